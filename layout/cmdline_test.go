package layout

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

const hash = "c87e212239020fcd6f8982d446964d092064678c94a79551a04b0a9f50f7fd14"

// TestParseCmdline checks the kernel's splitting and quoting rules
// (lib/cmdline.c next_arg) and that String gives back what it parsed.
func TestParseCmdline(t *testing.T) {
	tests := []struct {
		in   string
		want Cmdline
		out  string // String of the parsed line; "" means in
	}{
		{in: "", want: nil},
		{in: "quiet", want: Cmdline{{Key: "quiet"}}},
		{in: "usrhash=ab console=tty0", want: Cmdline{KV("usrhash", "ab"), KV("console", "tty0")}},
		{in: `foo="a b" bar`, want: Cmdline{KV("foo", "a b"), {Key: "bar"}}},
		{in: `"foo=a b"`, want: Cmdline{KV("foo", "a b")}, out: `foo="a b"`},
		{in: `foo=a"b c"d`, want: Cmdline{KV("foo", `a"b c"d`)}},
		{in: "  a=1\t\tb=2\n", want: Cmdline{KV("a", "1"), KV("b", "2")}, out: "a=1 b=2"},
		{in: "a= b==c", want: Cmdline{KV("a", ""), KV("b", "=c")}},
		{in: "console=ttyS0,115200 -- usrhash=x", want: Cmdline{KV("console", "ttyS0,115200"), {Key: "--"}, KV("usrhash", "x")}},
	}
	for _, tc := range tests {
		got := ParseCmdline(tc.in)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseCmdline(%q) (-want +got):\n-%#v\n+%#v", tc.in, tc.want, got)
		}
		out := tc.out
		if out == "" {
			out = tc.in
		}
		if s := got.String(); s != out {
			t.Errorf("ParseCmdline(%q).String() = %q, want %q", tc.in, s, out)
		}
	}
}

func TestValues(t *testing.T) {
	tests := []struct {
		cmdline string
		want    []string
	}{
		{"", nil},
		{"usrhash=ab console=tty0", []string{"ab"}},
		{"console=tty0 usrhash=\"cd\" usrhash=ef", []string{"cd", "ef"}},
		{"xusrhash=ab usrhash", nil},
		{"usrhash=ab -- usrhash=cd", []string{"ab"}},
	}
	for _, tt := range tests {
		if got := ParseCmdline(tt.cmdline).Values(KeyUsrHash); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Values(%q) = %q, want %q", tt.cmdline, got, tt.want)
		}
	}
}

// TestBootRoundTrip formats settings with Params and reads them back.
func TestBootRoundTrip(t *testing.T) {
	h, _ := ParseUsrHash(hash)
	full := Boot{UsrHash: h, Debug: "shell", Init: "/sbin/init", DeviceTimeout: 5 * time.Second, RebootDelay: 0,
		Encrypt: EncryptIfTPM, RecoveryKey: false, RequireSignedConfig: true, Panic: -1}
	def := DefaultBoot()
	def.UsrHash = h
	for _, b := range []Boot{full, def} {
		line := b.Params().String()
		got, err := ParseBoot(line)
		if err != nil {
			t.Fatalf("ParseBoot(%q): %v", line, err)
		}
		if !reflect.DeepEqual(got, b) {
			t.Errorf("ParseBoot(%q) (-want +got):\n-%+v\n+%+v", line, b, got)
		}
	}
	if got, want := def.Params().String(), "usrhash="+hash; got != want {
		t.Errorf("defaults give %q, want %q", got, want)
	}
}

func TestTwoUsrHashes(t *testing.T) {
	other := strings.Repeat("f", 64)
	if _, err := ParseBoot("usrhash=" + hash + " usrhash=" + other); err == nil || !strings.Contains(err.Error(), "disagree") {
		t.Errorf("two different usrhash=: error %v, want one saying they disagree", err)
	}
	if _, err := ParseBoot("usrhash=" + hash + " usrhash=" + hash); err != nil {
		t.Errorf("the same usrhash= twice: %v", err)
	}
}

func FuzzParseCmdline(f *testing.F) {
	for _, s := range []string{"usrhash=" + hash, `a="b c" d`, `"x=y z"`, `a=b"c d"e`, "--"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := ParseCmdline(s)
		for _, p := range c {
			if strings.Contains(p.Key+p.Value, `"`) {
				return // not representable: the kernel has no escape for '"'
			}
		}
		again := ParseCmdline(c.String())
		if c.String() != again.String() {
			t.Errorf("%q: String not stable: %q then %q", s, c.String(), again.String())
		}
		_, _ = c.Boot()
	})
}
func TestParseBoot(t *testing.T) {
	tests := []struct {
		name    string
		cmdline string
		check   func(Boot) bool
		wantErr string
	}{
		{"minimal", "usrhash=" + hash, func(p Boot) bool {
			return p.Init == "/usr/lib/systemd/systemd" && p.DeviceTimeout == 60*time.Second && len(p.UsrHash) == 32
		}, ""},
		{"all keys", `console=ttyS0 usrhash=` + hash + ` ingot.debug=shell init=/sbin/init ingot.device_timeout=5 ingot.reboot_delay=0 panic=0 foo="a b"`,
			func(p Boot) bool {
				return p.Debug == "shell" && p.Init == "/sbin/init" && p.DeviceTimeout == 5*time.Second && p.RebootDelay == 0 && p.Panic < 0
			}, ""},
		{"no usrhash", "console=ttyS0", nil, "no usrhash="},
		{"short usrhash", "usrhash=abcd", nil, "usrhash="},
		{"bad hex", "usrhash=" + strings.Repeat("zz", 32), nil, "usrhash="},
		{"relative init", "usrhash=" + hash + " init=sbin/init", nil, "init="},
		{"bad timeout", "usrhash=" + hash + " ingot.device_timeout=soon", nil, "ingot.device_timeout"},
		{"encrypted root", "usrhash=" + hash + " ingot.encrypt=tpm ingot.recovery_key=no", func(p Boot) bool {
			return p.Encrypt == EncryptTPM && !p.RecoveryKey
		}, ""},
		{"plain root by default", "usrhash=" + hash, func(p Boot) bool { return p.Encrypt == EncryptNone && p.RecoveryKey }, ""},
		{"unknown encryption", "usrhash=" + hash + " ingot.encrypt=fido2", nil, "ingot.encrypt"},
		{"bad recovery key switch", "usrhash=" + hash + " ingot.recovery_key=maybe", nil, "ingot.recovery_key"},
		{"signed configuration", "usrhash=" + hash + " ingot.config_signed=yes", func(p Boot) bool { return p.RequireSignedConfig }, ""},
		{"unsigned configuration by default", "usrhash=" + hash, func(p Boot) bool { return !p.RequireSignedConfig }, ""},
		{"bad signed configuration switch", "usrhash=" + hash + " ingot.config_signed=maybe", nil, "ingot.config_signed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseBoot(tc.cmdline)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(p) {
				t.Errorf("params %+v", p)
			}
		})
	}
}
