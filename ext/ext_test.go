package ext

import (
	"errors"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"debug", true}, {"a.b_c-1", true}, {"", false}, {"a/b", false}, {".", false}, {"..", false},
		{"-x", false}, {"a b", false}, {string(make([]byte, 65)), false},
	} {
		err := CheckName(tc.name)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrBadName) {
			t.Errorf("CheckName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestAllows(t *testing.T) {
	for _, tc := range []struct {
		k    Kind
		p    string
		want bool
	}{
		{Sysext, ".", true}, {Sysext, "usr/bin/x", true}, {Sysext, "opt", true}, {Sysext, "etc/x", false},
		{Sysext, "usrx", false}, {Confext, "etc/a", true}, {Confext, "usr/a", false},
	} {
		if got := tc.k.Allows(tc.p); got != tc.want {
			t.Errorf("%s.Allows(%q) = %v, want %v", tc.k, tc.p, got, tc.want)
		}
	}
}

func TestParseRelease(t *testing.T) {
	for _, tc := range []struct {
		name string
		k    Kind
		in   string
		want Release
		err  error
	}{
		{"sysext", Sysext, "ID=ingot\nSYSEXT_LEVEL=1.0.0\n", Release{Sysext, "ingot", "1.0.0"}, nil},
		{"quoted", Confext, "# c\nID=\"ingot\"\nCONFEXT_LEVEL='2'\n", Release{Confext, "ingot", "2"}, nil},
		{"version id", Sysext, "ID=ingot\nVERSION_ID=3\n", Release{Sysext, "ingot", "3"}, nil},
		{"any", Sysext, "ID=_any\n", Release{Sysext, AnyID, ""}, nil},
		{"no id", Sysext, "SYSEXT_LEVEL=1\n", Release{}, ErrMalformed},
		{"no level", Sysext, "ID=ingot\nCONFEXT_LEVEL=1\n", Release{}, ErrMalformed},
		{"garbage", Sysext, "ID=ingot\nnot a line\n", Release{}, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRelease(tc.k, []byte(tc.in))
			if !errors.Is(err, tc.err) || err == nil && got != tc.want {
				t.Errorf("ParseRelease = %+v, %v; want %+v, %v", got, err, tc.want, tc.err)
			}
			if err == nil {
				back, err := ParseRelease(tc.k, got.Bytes())
				if err != nil || back != got {
					t.Errorf("round trip: %+v, %v", back, err)
				}
			}
		})
	}
}

func TestFits(t *testing.T) {
	r := Release{Sysext, "ingot", "1.0.0"}
	if err := r.Fits("ingot", "1.0.0"); err != nil {
		t.Error(err)
	}
	for _, host := range [][2]string{{"debian", "1.0.0"}, {"ingot", "1.0.1"}} {
		if err := r.Fits(host[0], host[1]); !errors.Is(err, ErrWrongOS) {
			t.Errorf("Fits(%v) = %v, want ErrWrongOS", host, err)
		}
	}
}

func FuzzParseRelease(f *testing.F) {
	f.Add([]byte("ID=ingot\nSYSEXT_LEVEL=1.0.0\n"))
	f.Add([]byte("ID=_any\n"))
	f.Add([]byte("ID='x'\n#\nVERSION_ID=\"\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRelease(Sysext, b)
		if err != nil {
			return
		}
		if r.ID == "" || r.ID != AnyID && r.Level == "" {
			t.Fatalf("accepted %q as %+v", b, r)
		}
	})
}
