// Package crashstate enumerates the disk states a crash can leave behind,
// from a record of every write and flush (a dm-log-writes log, see
// format/logwrites), the way file-system crash-consistency tools do.
//
// The writes between two barriers (flushes, FUA writes) form an epoch. The
// block layer and the disk's cache may persist any subset of an epoch's
// writes, in any order, before the barrier completes; everything before
// the barrier is durable. A crash state is therefore: the disk before the
// recorded range, every epoch before some barrier, plus a subset of the
// next epoch. Enumerate yields, for each epoch of k writes:
//
//   - all 2^k subsets, and for each write of several sectors the states
//     where it is torn (its first half of sectors only) with none and with
//     all of the others, when that is at most Options.MaxPerEpoch (default
//     DefaultMaxPerEpoch = 256, so epochs of up to 7 or 8 writes
//     exhaustively);
//   - otherwise at most MaxPerEpoch subsets: the state at the barrier
//     (none of the epoch), every prefix in completion order, every
//     all-but-one set, torn writes (a prefix of the epoch plus the first
//     half of the next multi-sector write), each of these thinned evenly to a
//     quarter of the bound, then uniformly random subsets from a
//     generator seeded with Options.Seed and the epoch's number, so a run
//     is reproducible.
//
// States share one Overlay (the durable part, extents pointing into the
// log) and differ only in the few writes on top, so no disk is copied;
// View.Fingerprint lets checkers memoise work on regions a state did not
// change.
//
// Writes are treated as atomic except in the torn states; a FUA write is
// treated as a barrier after itself (a FUA write does not make earlier
// writes durable, so this misses states; virtio-blk never sends FUA).
// Discards are replayed as zeros. A write that completes while a flush is
// in progress may be logged before the flush's entry and is then treated
// as durable at it.
package crashstate
