package bootcheck

import (
	"fmt"
	"io"

	"github.com/ingot-linux/ingot/format/fat"
	"github.com/ingot-linux/ingot/layout"
)

// Updatable checks what `ingot update` requires of the disk before it
// writes anything (agent.Update's preconditions), for a machine running
// the /usr of usrHash: a readable partition table with two usr and two
// usr-verity partitions (slots a and b), one of them the booted /usr by
// PARTUUID, and one ESP whose file system can be read. With these a
// retried or next update can start.
func Updatable(r io.ReaderAt, size int64, usrHash []byte) error {
	d, err := openDisk(r, size)
	if err != nil {
		return err
	}
	usr, ver := d.table.ByType(layout.TypeUsr), d.table.ByType(layout.TypeUsrVerity)
	if len(usr) != 2 || len(ver) != 2 {
		return fmt.Errorf("want two usr and two usr-verity partitions (slots a and b), found %d and %d", len(usr), len(ver))
	}
	booted, _ := layout.UsrPartUUIDs(usrHash)
	if usr[0].UUID != booted && usr[1].UUID != booted {
		return fmt.Errorf("neither slot holds the booted /usr (PARTUUID %s)", booted)
	}
	esps := d.table.ByType(layout.TypeESP)
	if len(esps) != 1 {
		return fmt.Errorf("want one ESP, found %d", len(esps))
	}
	if _, err := fat.Open(d.part(esps[0])); err != nil {
		return fmt.Errorf("ESP: %w", err)
	}
	return nil
}
