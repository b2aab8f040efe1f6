package wire_test

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/codesignval/csv/attest/wire"
)

// TestOpen: a payload Encrypt sealed opens with its secret, format and AK
// Name, and with nothing else.
func TestOpen(t *testing.T) {
	secret := bytes.Repeat([]byte{1}, 32)
	ak := []byte{0, 11, 2, 3}
	ct, err := wire.Encrypt(rand.Reader, secret, wire.FormatToken, ak, []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	c := &wire.Credential{Format: wire.FormatToken, Ciphertext: ct}
	if pt, err := wire.Open(c, secret, ak); err != nil || string(pt) != "payload" {
		t.Fatalf("Open: %q, %v", pt, err)
	}
	for _, tc := range []struct {
		name   string
		c      *wire.Credential
		secret []byte
		ak     []byte
	}{
		{"another AK", c, secret, []byte{0, 11, 2, 4}},
		{"another secret", c, bytes.Repeat([]byte{2}, 32), ak},
		{"a short secret", c, secret[:16], ak},
		{"another format", &wire.Credential{Format: wire.FormatX509, Ciphertext: ct}, secret, ak},
		{"truncated", &wire.Credential{Format: wire.FormatToken, Ciphertext: ct[:20]}, secret, ak},
	} {
		if pt, err := wire.Open(tc.c, tc.secret, tc.ak); err == nil || pt != nil {
			t.Errorf("%s: opened %q", tc.name, pt)
		}
	}
}

func TestDecodeNonce(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int // bytes, or -1 for an error
	}{
		{"AQ", 1},
		{strings.Repeat("A", 86), 64},
		{strings.Repeat("A", 88), -1}, // 66 bytes
		{"", -1},
		{"AQ==", -1}, // padded
		{"A+", -1},   // not base64url
	} {
		b, err := wire.DecodeNonce(tc.in)
		if got := len(b); err != nil && tc.want != -1 || err == nil && got != tc.want {
			t.Errorf("DecodeNonce(%q) = %d bytes, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}
