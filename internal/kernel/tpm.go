package kernel

import (
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/ingot-linux/ingot/tpm"
)

// MeasurePCR extends PCR pcr of the TPM at tpm.Device with data, as
// tpm.Measure does.
func (Linux) MeasurePCR(pcr int, data []byte) ([]string, error) {
	return tpm.Measure(pcr, data)
}

// PCRInUse reports whether PCR pcr of the TPM at tpm.Device has been
// extended since the last reset (see tpm.PCRInUse). Without a TPM the
// error wraps fs.ErrNotExist.
func (Linux) PCRInUse(pcr int) (bool, error) {
	t, err := tpm.Open()
	if err != nil {
		return false, err
	}
	defer t.Close()
	return tpm.PCRInUse(t, pcr)
}

// OpenTPM opens the TPM at tpm.Device. Without a TPM the error wraps
// fs.ErrNotExist.
func (Linux) OpenTPM() (transport.TPMCloser, error) { return tpm.Open() }
