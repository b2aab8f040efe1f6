package bootlog_test

import (
	"bytes"
	"crypto/sha1" //nolint:gosec // a SHA1 bank's digest
	"crypto/sha256"
	"crypto/sha512"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/bootlog"
	"github.com/codesignval/csv/attest/eventlog"
)

// FuzzWrite: whatever file path and application bytes a lab names, the
// log written parses, replays to the PCRs the Writer reports, and names
// the application as given (a path too long for a device path node is
// left out, never written as a node whose length wrapped).
func FuzzWrite(f *testing.F) {
	f.Add(`\EFI\BOOT\BOOTX64.EFI`, []byte("app"), uint8(2))
	f.Add("", []byte{}, uint8(0))
	f.Add("systemd-bootx64.efi", bytes.Repeat([]byte{0xff}, 100), uint8(1))
	f.Add("\x00\xff\xfe\ud7ff", []byte("x"), uint8(3))
	f.Add(string(bytes.Repeat([]byte("a"), 40000)), []byte("long"), uint8(2))
	bankSets := [][]eventlog.HashAlg{{eventlog.SHA256}, {eventlog.SHA1, eventlog.SHA256}, {eventlog.SHA256, eventlog.SHA384}, {eventlog.SHA1, eventlog.SHA256, eventlog.SHA384}}
	f.Fuzz(func(t *testing.T, path string, app []byte, banks uint8) {
		s256, s1, s384 := sha256.Sum256(app), sha1.Sum(app), sha512.Sum384(app) //nolint:gosec
		w, err := bootlog.Write(bootlog.Options{Banks: bankSets[int(banks)%len(bankSets)], SecureBoot: true,
			Apps: []bootlog.App{{SHA256: s256[:], SHA1: s1[:], SHA384: s384[:], Path: path}}})
		if err != nil {
			t.Fatal(err)
		}
		in, err := attest.Inspect(w.Bytes())
		if err != nil {
			t.Fatalf("the log written does not parse: %v", err)
		}
		strict, want := in.Replay.Strict(), w.PCRs()
		for _, b := range bankSets[int(banks)%len(bankSets)] {
			for p := 0; p < eventlog.NumPCRs; p++ {
				if !bytes.Equal(strict.Get(b, p), want.Get(b, p)) {
					t.Fatalf("%s PCR %d replays to %x, the writer says %x", b, p, strict.Get(b, p), want.Get(b, p))
				}
			}
		}
		// The verifier takes for a component every PCR 4 measurement but
		// separators and the fixed firmware actions, by digest: an
		// "application" of those very bytes is not one.
		for _, fixed := range []string{"\x00\x00\x00\x00", "\xff\xff\xff\xff", "Calling EFI Application from Boot Option",
			"Returning from EFI Application from Boot Option", "BOOT ATTEMPTS OMITTED"} {
			if string(app) == fixed {
				return
			}
		}
		if len(in.Boot.Components) != 1 || !bytes.Equal(in.Boot.Components[0].AuthenticodeSHA256, s256[:]) {
			t.Fatalf("components %+v", in.Boot.Components)
		}
		// A path that fits a node, of valid UTF-8 without NUL, is the
		// component's name; one too long is left out.
		name := in.Boot.Components[0].Name
		fits := 4+2*len(utf16.Encode([]rune(path+"\x00"))) <= 0xffff
		if utf8.ValidString(path) && !strings.ContainsRune(path, 0) && fits && name != path {
			t.Fatalf("named %q, want %q", name, path)
		}
		if !fits && name != "" {
			t.Fatalf("a path too long for a node is named %q", name)
		}
	})
}
