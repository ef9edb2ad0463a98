package bootcheck_test

import (
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/bootcheck"
	"github.com/ingot-linux/ingot/trust"
)

// TestCheckSigned: with a db, only a UKI signed by it starts.
func TestCheckSigned(t *testing.T) {
	keys, err := trust.LoadKeys("../trust/testdata/keys", trust.WithTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
	if err != nil {
		t.Fatal(err)
	}
	db := []*x509.Certificate{keys.DB.Cert}
	tests := []struct {
		name   string
		signer *trust.SigningKey // nil: unsigned
		errHas string
	}{
		{"signed by db", &keys.DB, ""},
		{"signed by another key", &keys.KEK, "not whole and signed by the db"},
		{"unsigned", nil, "not whole and signed by the db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := buildVersion(t, "1.0.0")
			if tt.signer != nil {
				if v.uki, err = trust.SignPE(v.uki, tt.signer.Signer, tt.signer.Cert); err != nil {
					t.Fatal(err)
				}
			}
			p, _ := writeDisk(t, v, "timeout 0\n")
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			res := bootcheck.New(bootcheck.Options{DB: db}).Check(f, diskBytes)
			switch {
			case tt.errHas == "" && res.Err != nil:
				t.Errorf("does not boot: %v", res)
			case tt.errHas != "" && (res.Err == nil || !strings.Contains(res.Err.Error(), tt.errHas)):
				t.Errorf("%v, want an error saying %q", res, tt.errHas)
			}
		})
	}
}
