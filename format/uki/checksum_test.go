package uki_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ingot-linux/ingot/format/uki"
)

func TestVerifyChecksum(t *testing.T) {
	good := build(t, makeStub(stubOptions{}), sampleSections())
	tests := []struct {
		name   string
		mutate func(b []byte) []byte
		want   error
	}{
		{"whole", func(b []byte) []byte { return b }, nil},
		{"zeroed tail", func(b []byte) []byte { clear(b[len(b)-4096:]); return b }, uki.ErrChecksum},
		{"flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }, uki.ErrChecksum},
		{"no checksum", func(b []byte) []byte { clear(b[0x40+24+64 : 0x40+24+68]); clear(b[len(b)-512:]); return b }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.mutate(bytes.Clone(good))
			err := uki.VerifyChecksum(bytes.NewReader(b), int64(len(b)))
			if !errors.Is(err, tt.want) {
				t.Errorf("VerifyChecksum: %v, want %v", err, tt.want)
			}
		})
	}
	if err := uki.VerifyChecksum(bytes.NewReader([]byte("not a PE file at all, just text padding it out to sixty-four bytes")), 66); err == nil {
		t.Error("text accepted as PE")
	}
}
