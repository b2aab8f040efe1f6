package attest

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/attest/attesttest"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/internal/testenv"
)

// realSIPASeeds adds the data of every SIPA event of the real Windows
// logs in ../shared (none is an SI policy event; they are well-formed
// payloads of other layouts), when the folder is there.
func realSIPASeeds(f *testing.F) {
	base := os.Getenv("CSV_SHARED")
	if base == "" {
		base = filepath.Join(testenv.RepoRoot(f), "..", "shared")
	}
	if _, err := os.Stat(filepath.Join(base, "testdata", "eventlogs")); err != nil {
		return // seeds only: the fuzz target runs without them
	}
	for _, name := range []string{"go-attestation/windows_gcp_shielded_vm.json", "keylime-python3-uefi-eventlog/p511.bin"} {
		l, err := eventlog.Parse(attesttest.Find(f, name).Raw)
		if err != nil {
			f.Fatal(err)
		}
		seen := map[string]bool{}
		var walk func(evs []SIPAEvent)
		walk = func(evs []SIPAEvent) {
			for _, e := range evs {
				if len(e.Data) >= 8 && !seen[string(e.Data)] {
					seen[string(e.Data)] = true
					f.Add(e.Data)
				}
				walk(e.Children)
			}
		}
		for _, e := range l.Events {
			if e.Type == eventlog.EvEventTag {
				if evs, err := ParseSIPA(e.Data); err == nil {
					walk(evs)
				}
			}
		}
	}
}

// FuzzSIPolicyEvent: ParseSIPolicyEvent never panics, returns a policy or
// an error, and what it accepts is the payload it describes: encoded
// again (one NUL terminator), it reads back the same, and its digest and
// name account for every byte.
func FuzzSIPolicyEvent(f *testing.F) {
	f.Add(siPolicyPayload(0x000A000000000005, "{"+testCIPolicyGUID+"}", algSHA256, bytes.Repeat([]byte{0xAB}, 32)))
	f.Add(siPolicyPayload(1, "Microsoft Windows Driver Policy", algSHA1, make([]byte, 20)))
	f.Add(siPolicyPayload(1, "x\U0001F600", 0x0027, make([]byte, 64)))
	f.Add(siPolicyPayload(1, "", 0x000D, make([]byte, 64)))
	realSIPASeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseSIPolicyEvent(data)
		panicerr.Check(t, err)
		if (err == nil) == (c == nil) {
			t.Fatalf("policy %v, err %v", c, err)
		}
		if err != nil {
			return
		}
		d, derr := hex.DecodeString(c.Digest)
		alg := binary.LittleEndian.Uint16(data[10:])
		again, err := ParseSIPolicyEvent(siPolicyPayload(c.VersionEx, c.Name, alg, d))
		panicerr.Check(t, err)
		if derr != nil || err != nil || *again != *c || !bytes.HasSuffix(data, d) || FormatVersionEx(c.VersionEx) != c.Version {
			t.Fatalf("%+v does not round trip: %+v, %v", c, again, err)
		}
		_ = c.ID()
		// The same event inside a container, through the Windows state
		// reader.
		n := 0
		w := newWindowsState()
		err = w.read(sipa(0x40010001, sipa(sipaSIPolicy, data)), 0, &n, map[string]bool{})
		panicerr.Check(t, err)
		if err != nil || len(w.CIPolicies) != 1 || w.CIPolicies[0] != *c {
			t.Fatalf("WindowsState: %v %+v", err, w.CIPolicies)
		}
	})
}

// FuzzBinaryCIPolicy: ParseBinaryCIPolicy never panics and returns a
// header or an error; what it accepts, unsigned, has the version it
// reports at offset 0x38.
func FuzzBinaryCIPolicy(f *testing.F) {
	raw := binaryPolicy(f, 8, testCIPolicyGUID, "10.1.2.3")
	f.Add(raw)
	f.Add(binaryPolicy(f, 1, testSuppGUID, "0.0.0.1"))
	f.Add(signedPolicy(f, raw, true))
	f.Add(signedPolicy(f, raw, false))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseBinaryCIPolicy(data)
		panicerr.Check(t, err)
		if (err == nil) == (p == nil) {
			t.Fatalf("policy %v, err %v", p, err)
		}
		if err != nil {
			return
		}
		if !p.Signed && (binary.LittleEndian.Uint64(data[0x38:]) != p.VersionEx || len(p.SHA256) != 1) {
			t.Fatalf("%+v", p)
		}
		if _, ok := NormalizeGUID(p.PolicyTypeID); !ok {
			t.Fatalf("ID %q", p.PolicyTypeID)
		}
	})
}
