// Package casync cuts files into content-defined chunks and reads and
// writes their index in casync's blob index format (.caibx), the format
// casync and desync use.
//
// ingot uses it for delta updates: "ingot push" stores, next to each
// payload file of an update artifact, its index; a machine cuts what it
// has locally (both /usr slots, their verity trees, the ESP) into chunks
// with the same sizes ([Seeds]) and fetches only the chunks it lacks.
//
//	x, err := casync.Make(f, casync.DefaultParams())
//	b, err := x.MarshalBinary()
//	x, err = casync.Parse(b, size) // every declared size bounded
//
// Chunk ids are the sha256 of the chunk's bytes, so a chunk is checked
// against its id before it is used, wherever it came from.
//
// ingot has its own implementation rather than desync's package because
// desync's one Go package also holds its S3, GCS, SFTP and HTTP stores,
// whose dependencies would not fit the device binary's size budget; the
// tests check this one against desync.
package casync
