package vm

import (
	"slices"
	"strings"
	"testing"
)

// common is the start of every command line with default resources.
func common(machine string) []string {
	return []string{
		"-nodefaults", "-no-user-config",
		"-machine", machine,
		"-accel", "tcg",
		"-cpu", "max",
		"-smp", "2",
		"-m", "1024",
		"-display", "none",
	}
}

func join(parts ...[]string) []string { return slices.Concat(parts...) }

var (
	ovmf = []string{
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
		"-drive", "if=pflash,format=raw,unit=1,file=/run/OVMF_VARS.fd",
	}
	console = []string{
		"-chardev", "stdio,id=console,signal=off",
		"-serial", "chardev:console",
	}
	qmpArgs = []string{
		"-chardev", "socket,id=qmp,fd=3",
		"-mon", "chardev=qmp,mode=control",
	}
	rng   = []string{"-device", "virtio-rng-pci"}
	nonic = []string{"-nic", "none"}
)

func TestArgs(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{
			name: "zero",
			cfg:  Config{RunDir: "/run"},
			want: join(common("q35"), ovmf, rng, nonic, console, qmpArgs),
		},
		{
			name: "overlay",
			cfg:  Config{RunDir: "/run", Image: "/img/ingot.raw"},
			want: join(common("q35"), ovmf, []string{
				"-drive", "if=none,id=disk0,format=qcow2,cache=unsafe,discard=unmap,file=/run/disk0.qcow2",
				"-device", "virtio-blk-pci,drive=disk0,bootindex=0",
			}, rng, nonic, console, qmpArgs),
		},
		{
			name: "write log",
			cfg:  Config{RunDir: "/run", Image: "/img/ingot.raw", WriteLog: "/logs/a,b.log"},
			want: join(common("q35"), ovmf, []string{
				"-blockdev", "driver=file,node-name=disk0-file,cache.no-flush=on,filename=/run/disk0.qcow2",
				"-blockdev", "driver=qcow2,node-name=disk0-format,discard=unmap,file=disk0-file",
				"-blockdev", "driver=file,node-name=disk0-logfile,cache.no-flush=on,filename=/logs/a,,b.log",
				"-blockdev", "driver=blklogwrites,node-name=disk0,discard=unmap,file=disk0-format,log=disk0-logfile,log-sector-size=512",
				"-device", "virtio-blk-pci,drive=disk0,bootindex=0,write-cache=on,discard=off,write-zeroes=off",
			}, rng, nonic, console, qmpArgs),
		},
		{
			name: "persist, extra disks, resources, extra args",
			cfg: Config{
				RunDir:     "/run",
				Image:      "/img/a,b.raw",
				Persist:    true,
				ExtraDisks: []string{"/x/scratch.raw", "/x/data.qcow2"},
				MemoryMiB:  2048,
				CPUs:       1,
				ExtraArgs:  []string{"-d", "guest_errors"},
			},
			want: join([]string{
				"-nodefaults", "-no-user-config",
				"-machine", "q35",
				"-accel", "tcg",
				"-cpu", "max",
				"-smp", "1",
				"-m", "2048",
				"-display", "none",
			}, ovmf, []string{
				"-drive", "if=none,id=disk0,format=raw,cache=unsafe,discard=unmap,file=/img/a,,b.raw",
				"-device", "virtio-blk-pci,drive=disk0,bootindex=0",
				"-drive", "if=none,id=disk1,format=raw,cache=unsafe,discard=unmap,file=/x/scratch.raw",
				"-device", "virtio-blk-pci,drive=disk1",
				"-drive", "if=none,id=disk2,format=qcow2,cache=unsafe,discard=unmap,file=/x/data.qcow2",
				"-device", "virtio-blk-pci,drive=disk2",
			}, rng, nonic, console, qmpArgs, []string{"-d", "guest_errors"}),
		},
		{
			name: "user net",
			cfg: Config{RunDir: "/run", UserNet: &UserNet{
				HostForwards: []Forward{
					{HostPort: 2222, GuestPort: 22},
					{Proto: "udp", HostAddr: "127.0.0.2", HostPort: 5353, GuestAddr: "10.0.2.15", GuestPort: 53},
				},
				GuestForwards: []GuestForward{
					{GuestPort: 80, Target: "127.0.0.1:8080"},
					{GuestAddr: "10.0.2.101", GuestPort: 443, Target: "localhost:8443"},
				},
			}},
			want: join(common("q35"), ovmf, rng, []string{
				"-netdev", "user,id=net0,restrict=on" +
					",hostfwd=tcp:127.0.0.1:2222-:22" +
					",hostfwd=udp:127.0.0.2:5353-10.0.2.15:53" +
					",guestfwd=tcp:10.0.2.100:80-cmd:socat - TCP:127.0.0.1:8080" +
					",guestfwd=tcp:10.0.2.101:443-cmd:socat - TCP:localhost:8443",
				"-device", "virtio-net-pci,netdev=net0",
			}, console, qmpArgs),
		},
		{
			name: "interactive",
			cfg:  Config{RunDir: "/run", Interactive: true},
			want: join(common("q35"), ovmf, rng, nonic, []string{
				"-chardev", "stdio,id=console,signal=off,mux=on",
				"-serial", "chardev:console",
				"-mon", "chardev=console,mode=readline",
			}, qmpArgs),
		},
		{
			name: "secure boot, persistent vars, kvm",
			cfg:  Config{RunDir: "/run", SecureBoot: true, PersistentVars: "/state/vars.fd", Accel: "kvm"},
			want: join([]string{
				"-nodefaults", "-no-user-config",
				"-machine", "q35,smm=on",
				"-accel", "kvm",
				"-cpu", "max",
				"-smp", "2",
				"-m", "1024",
				"-display", "none",
				"-global", "driver=cfi.pflash01,property=secure,value=on",
				"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
				"-drive", "if=pflash,format=raw,unit=1,file=/state/vars.fd",
			}, rng, nonic, console, qmpArgs),
		},
		{
			name: "tpm",
			cfg:  Config{RunDir: "/run", TPM: true},
			want: join(common("q35"), ovmf, rng, []string{
				"-chardev", "socket,id=chrtpm,path=/run/swtpm.sock",
				"-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
				"-device", "tpm-tis,tpmdev=tpm0",
			}, nonic, console, qmpArgs),
		},
		{
			name: "snakeoil firmware implies smm",
			cfg:  Config{RunDir: "/run", Firmware: "/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd"},
			want: join(common("q35,smm=on"), []string{
				"-global", "driver=cfi.pflash01,property=secure,value=on",
				"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd",
				"-drive", "if=pflash,format=raw,unit=1,file=/run/OVMF_VARS.fd",
			}, rng, nonic, console, qmpArgs),
		},
		{
			name: "SMBIOS credentials, sorted, binary",
			cfg: Config{RunDir: "/run", SMBIOSCredentials: map[string][]byte{
				"ingot.config": []byte("version: 1\nhostname: a,b\n"),
				"a.b":          []byte("x"),
			}},
			want: join(common("q35"), ovmf, rng, []string{
				"-smbios", "type=11,value=io.systemd.credential.binary:a.b=eA==",
				"-smbios", "type=11,value=io.systemd.credential.binary:ingot.config=dmVyc2lvbjogMQpob3N0bmFtZTogYSxiCg==",
			}, nonic, console, qmpArgs),
		},
		{
			name: "combined firmware uses -bios",
			cfg:  Config{RunDir: "/run", Firmware: "/usr/share/qemu/OVMF.fd"},
			want: join(common("q35"), []string{"-bios", "/usr/share/qemu/OVMF.fd"}, rng, nonic, console, qmpArgs),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.cfg.Args()
			if !slices.Equal(got, tt.want) {
				t.Errorf("Args() mismatch\n got: %q\nwant: %q", got, tt.want)
			}
			if again := tt.cfg.Args(); !slices.Equal(got, again) {
				t.Errorf("Args() not deterministic:\n%q\n%q", got, again)
			}
		})
	}
}

func TestArgsNeverNoReboot(t *testing.T) {
	for _, c := range []Config{{}, {Interactive: true}, {Persist: true, Image: "x"}} {
		for _, a := range c.Args() {
			if a == "-no-reboot" || a == "-nographic" || strings.Contains(a, "restrict=off") {
				t.Errorf("Args(%+v) contains %q", c, a)
			}
		}
	}
}

func TestVarsFor(t *testing.T) {
	tests := map[string]string{
		"/usr/share/OVMF/OVMF_CODE_4M.fd":          "/usr/share/OVMF/OVMF_VARS_4M.fd",
		"/usr/share/OVMF/OVMF_CODE.fd":             "/usr/share/OVMF/OVMF_VARS.fd",
		"/usr/share/OVMF/OVMF_CODE_4M.secboot.fd":  "/usr/share/OVMF/OVMF_VARS_4M.fd",
		"/usr/share/OVMF/OVMF_CODE_4M.ms.fd":       "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
		"/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd": "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd",
		"/usr/share/qemu/OVMF.fd":                  "",
	}
	for code, want := range tests {
		if got := varsFor(code); got != want {
			t.Errorf("varsFor(%q) = %q, want %q", code, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := []Config{
		{},
		{Accel: "kvm", MemoryMiB: 512},
		{UserNet: &UserNet{}},
		{SMBIOSCredentials: map[string][]byte{"ingot.config": []byte("x=y")}},
		{UserNet: &UserNet{
			HostForwards:  []Forward{{HostAddr: "::1", HostPort: 1, GuestPort: 65535}},
			GuestForwards: []GuestForward{{GuestPort: 1, Target: "[::1]:9"}},
		}},
	}
	for _, c := range ok {
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", c, err)
		}
	}
	bad := []struct {
		cfg  Config
		want string
	}{
		{Config{Accel: "hvf"}, "accelerator"},
		{Config{DiskSizeBytes: -1}, "negative"},
		{Config{MemoryMiB: -1}, "negative"},
		{Config{CPUs: -2}, "negative"},
		{Config{UserNet: &UserNet{HostForwards: []Forward{{HostAddr: "0.0.0.0", HostPort: 2222, GuestPort: 22}}}}, "loopback"},
		{Config{UserNet: &UserNet{HostForwards: []Forward{{Proto: "sctp", HostPort: 1, GuestPort: 1}}}}, "protocol"},
		{Config{UserNet: &UserNet{HostForwards: []Forward{{GuestPort: 22}}}}, "host port 0"},
		{Config{UserNet: &UserNet{GuestForwards: []GuestForward{{GuestPort: 80, Target: "192.168.1.1:80"}}}}, "loopback"},
		{Config{UserNet: &UserNet{GuestForwards: []GuestForward{{GuestPort: 80, Target: "example.com:80"}}}}, "loopback"},
		{Config{UserNet: &UserNet{GuestForwards: []GuestForward{{GuestPort: 80, Target: "127.0.0.1"}}}}, "target"},
		{Config{UserNet: &UserNet{GuestForwards: []GuestForward{{Target: "127.0.0.1:80"}}}}, "guest port 0"},
		{Config{SMBIOSCredentials: map[string][]byte{"a=b": nil}}, "SMBIOS credential"},
		{Config{SMBIOSCredentials: map[string][]byte{"": nil}}, "SMBIOS credential"},
	}
	for _, b := range bad {
		err := b.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("Validate(%+v) = %v, want an error containing %q", b.cfg, err, b.want)
		}
	}
}

func TestTPMStateDir(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{RunDir: "/run", TPM: true}, "/run/tpm"},
		{Config{RunDir: "/run", TPM: true, PersistentVars: "/state/vars.fd"}, "/state/vars.fd.tpm"},
		{Config{RunDir: "/run", TPM: true, PersistentVars: "/state/vars.fd", TPMState: "/tpm"}, "/tpm"},
	} {
		if got := tc.cfg.tpmStateDir(); got != tc.want {
			t.Errorf("%+v: TPM state in %s, want %s", tc.cfg, got, tc.want)
		}
		args := strings.Join(tc.cfg.swtpmArgs(), " ")
		if !strings.Contains(args, "--tpmstate dir="+tc.want+",mode=0600") || !strings.Contains(args, "--tpm2") {
			t.Errorf("swtpm args %s", args)
		}
	}
}
