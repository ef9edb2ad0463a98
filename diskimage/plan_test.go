package diskimage_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/layout"
)

// TestNewPlanFieldErrors: every problem with the options is reported,
// each as a *diskimage.FieldError naming the field.
func TestNewPlanFieldErrors(t *testing.T) {
	good := diskimage.Options{RootFS: "r.tar", Version: "1.0.0", OutputDir: "out"}
	tests := []struct {
		name   string
		mod    func(*diskimage.Options)
		fields []string
	}{
		{"good", func(*diskimage.Options) {}, nil},
		{"nothing given", func(o *diskimage.Options) { *o = diskimage.Options{} }, []string{"RootFS", "Version", "OutputDir"}},
		{"encrypted without keys", func(o *diskimage.Options) { o.EncryptRoot = layout.EncryptTPM }, []string{"EncryptRoot"}},
		{"unknown encryption", func(o *diskimage.Options) { o.EncryptRoot = "rot13" }, []string{"EncryptRoot"}},
		{"usrhash given", func(o *diskimage.Options) { o.Cmdline = []string{"usrhash=00"} }, []string{"Cmdline"}},
		{"negative sizes", func(o *diskimage.Options) { o.UsrSlotBytes, o.ESPBytes, o.RootFSMaxBytes = -1, -1, -1 },
			[]string{"UsrSlotBytes", "ESPBytes", "RootFSMaxBytes"}},
		{"negative epoch", func(o *diskimage.Options) { o.Epoch = -2 }, []string{"Epoch"}},
		{"two SBOMs", func(o *diskimage.Options) {
			o.SBOM, o.MakeSBOM = []byte("{}"), func(time.Time) ([]byte, error) { return nil, nil }
		}, []string{"MakeSBOM"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.mod(&o)
			_, err := diskimage.NewPlan(o)
			var got []string
			for _, e := range unjoin(err) {
				var fe *diskimage.FieldError
				if !errors.As(e, &fe) {
					t.Errorf("%v is not a *FieldError", e)
					continue
				}
				got = append(got, fe.Field)
			}
			if !slices.Equal(got, tc.fields) {
				t.Errorf("fields %v, want %v (%v)", got, tc.fields, err)
			}
		})
	}
}

func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// TestFieldErrorDescribe: a command line names its flag instead.
func TestFieldErrorDescribe(t *testing.T) {
	e := &diskimage.FieldError{Field: "EncryptRoot", Value: "tpm", Problem: "needs keys", Err: errors.New("cause")}
	if got, want := e.Error(), "EncryptRoot tpm: needs keys: cause"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := e.Describe("--encrypt-root"), "--encrypt-root tpm: needs keys: cause"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
}

func TestPlanMachineConfig(t *testing.T) {
	o := diskimage.Options{RootFS: "r", Version: "1.0.0", OutputDir: "o", MachineConfigName: "defaults.yaml", MachineConfig: []byte("version: 1\nhostnme: x\n")}
	_, err := diskimage.NewPlan(o)
	if err == nil || !strings.Contains(err.Error(), `defaults.yaml:2:1: the document: unknown key "hostnme"`) {
		t.Errorf("err %v", err)
	}
	o.MachineConfig = []byte("version: 1\nhostname: x\n")
	if _, err := diskimage.NewPlan(o); err != nil {
		t.Error(err)
	}
}

func TestPlanRequireSignedConfig(t *testing.T) {
	tests := []struct {
		name string
		o    diskimage.Options
		want string
	}{
		{"without keys", diskimage.Options{RequireSignedConfig: true}, "RequireSignedConfig"},
		{"on the extra command line", diskimage.Options{Cmdline: []string{"ingot.config_signed=no"}}, "ingot.config_signed="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.RootFS, tt.o.Version, tt.o.OutputDir = "r", "1.0.0", "o"
			if _, err := diskimage.NewPlan(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewPlan: %v, want an error naming %s", err, tt.want)
			}
		})
	}
}
