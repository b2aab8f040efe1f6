package zip

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"testing"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/signing"
)

// descriptor returns a data descriptor (with its signature) for data
// deflated as craft deflates it.
func descriptor(data []byte, crcDelta uint32) []byte {
	d := make([]byte, 16)
	binary.LittleEndian.PutUint32(d, sigDesc)
	binary.LittleEndian.PutUint32(d[4:], crc32.ChecksumIEEE(data)+crcDelta)
	binary.LittleEndian.PutUint32(d[8:], uint32(len(deflate(data))))
	binary.LittleEndian.PutUint32(d[12:], uint32(len(data)))
	return d
}

// apkBlock returns an APK signing block holding one pair.
func apkBlock(size uint64) []byte {
	pair := []byte{12, 0, 0, 0, 0, 0, 0, 0, 0x1a, 0x87, 0x09, 0x71, 'a', 'b', 'c', 'd'}
	var b []byte
	b = binary.LittleEndian.AppendUint64(b, size)
	b = append(b, pair...)
	b = binary.LittleEndian.AppendUint64(b, size)
	return append(b, apkSigMagic...)
}

func unicodePath(stored, name string) []byte {
	b := binary.LittleEndian.AppendUint16(nil, extraUnicodePath)
	b = binary.LittleEndian.AppendUint16(b, uint16(5+len(name)))
	b = append(b, 1)
	b = binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE([]byte(stored)))
	return append(b, name...)
}

// TestHostile walks archives crafted byte by byte, one per refusal and
// finding of the package documentation.
func TestHostile(t *testing.T) {
	dll := binaryLike(20, 40_000)
	so := binaryLike(21, 3000)
	good := func() []craftEntry {
		return []craftEntry{{name: "a.dll", data: dll, method: methodDeflate}, {name: "b.so", data: so}}
	}
	with := func(i int, f func(*craftEntry)) []craftEntry {
		es := good()
		f(&es[i])
		return es
	}
	zeros := make([]byte, 5<<20)
	for _, tc := range []struct {
		name    string
		zip     []byte
		lim     *container.Limits
		walkErr error            // what Walk returns
		problem map[string]error // members' problems, by name
		readErr map[string]error // errors reading members, by name
		want    []string         // members judged (read without error), in order
	}{
		{name: "good", zip: craft(good(), craftOpts{}), want: []string{"a.dll", "b.so"}},
		{name: "prepended unlisted member",
			zip:     craft(append([]craftEntry{{name: "evil.dll", data: so, unlisted: true}}, good()...), craftOpts{}),
			problem: map[string]error{"evil.dll": container.ErrMember}, want: []string{"a.dll", "b.so"}},
		{name: "interleaved unlisted member",
			zip:     craft([]craftEntry{good()[0], {name: "a.dll", data: so, unlisted: true}, good()[1]}, craftOpts{}),
			problem: map[string]error{"a.dll": container.ErrMember}, want: []string{"a.dll", "b.so"}},
		{name: "bytes between members", zip: craft(good(), craftOpts{between: []byte("junk")}), walkErr: signing.ErrMalformed},
		{name: "bytes before the first member", zip: craft(good(), craftOpts{prefix: []byte("MZ\x90\x00")}), walkErr: signing.ErrMalformed},
		{name: "overlapping members",
			zip: craft(with(1, func(e *craftEntry) { e.name, e.offset = "a.dll", u32(0) }), craftOpts{}), walkErr: signing.ErrMalformed},
		{name: "local name differs",
			zip:     craft(with(0, func(e *craftEntry) { e.cdName = "c.dll" }), craftOpts{}),
			problem: map[string]error{"c.dll": signing.ErrMalformed}, want: []string{"b.so"}},
		{name: "local CRC differs",
			zip:     craft(with(0, func(e *craftEntry) { e.localCRC = u32(1) }), craftOpts{}),
			problem: map[string]error{"a.dll": signing.ErrMalformed}, want: []string{"b.so"}},
		{name: "local flags differ",
			zip:     craft(with(1, func(e *craftEntry) { e.cdFlags = u16(flagUTF8) }), craftOpts{}),
			problem: map[string]error{"b.so": signing.ErrMalformed}, want: []string{"a.dll"}},
		{name: "data descriptor",
			zip:  craft(with(0, func(e *craftEntry) { e.flags, e.desc = flagDesc, descriptor(dll, 0) }), craftOpts{}),
			want: []string{"a.dll", "b.so"}},
		{name: "data descriptor without signature",
			zip:  craft(with(0, func(e *craftEntry) { e.flags, e.desc = flagDesc, descriptor(dll, 0)[4:] }), craftOpts{}),
			want: []string{"a.dll", "b.so"}},
		{name: "zip64 data descriptor without a zip64 field",
			zip: craft(with(0, func(e *craftEntry) {
				d := descriptor(dll, 0)
				e.flags, e.desc = flagDesc, binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(d[:8:8], uint64(le32(d[8:]))), uint64(len(dll)))
			}), craftOpts{}),
			want: []string{"a.dll", "b.so"}},
		{name: "data descriptor differs",
			zip:     craft(with(0, func(e *craftEntry) { e.flags, e.desc = flagDesc, descriptor(dll, 1) }), craftOpts{}),
			problem: map[string]error{"a.dll": signing.ErrMalformed}, want: []string{"b.so"}},
		{name: "CRC differs from the data",
			zip:     craft(with(0, func(e *craftEntry) { e.crc = u32(crc32.ChecksumIEEE(dll) ^ 1) }), craftOpts{}),
			readErr: map[string]error{"a.dll": signing.ErrMalformed}, want: []string{"b.so"}},
		{name: "stored CRC differs from the data",
			zip:     craft(with(1, func(e *craftEntry) { e.crc = u32(7) }), craftOpts{}),
			readErr: map[string]error{"b.so": signing.ErrMalformed}, want: []string{"a.dll"}},
		{name: "deflated size declared short",
			zip:     craft(with(0, func(e *craftEntry) { e.usize = u32(100) }), craftOpts{}),
			readErr: map[string]error{"a.dll": signing.ErrMalformed}, want: []string{"b.so"}},
		{name: "deflated size declared long",
			zip:     craft(with(0, func(e *craftEntry) { e.usize = u32(50_000) }), craftOpts{}),
			readErr: map[string]error{"a.dll": signing.ErrMalformed}, want: []string{"b.so"}},
		{name: "bytes after the deflate stream",
			zip:     craft(with(0, func(e *craftEntry) { e.compTail = []byte("hidden") }), craftOpts{}),
			readErr: map[string]error{"a.dll": signing.ErrMalformed}, want: []string{"b.so"}},
		{name: "stored sizes differ",
			zip:     craft(with(1, func(e *craftEntry) { e.usize = u32(10) }), craftOpts{}),
			problem: map[string]error{"b.so": signing.ErrMalformed}, want: []string{"a.dll"}},
		{name: "encrypted",
			zip:     craft(with(0, func(e *craftEntry) { e.flags = flagEncrypted }), craftOpts{}),
			problem: map[string]error{"a.dll": container.ErrMember}, want: []string{"b.so"}},
		{name: "patched data",
			zip:     craft(with(0, func(e *craftEntry) { e.flags = flagPatched }), craftOpts{}),
			problem: map[string]error{"a.dll": container.ErrMember}, want: []string{"b.so"}},
		{name: "AES",
			zip:     craft(with(0, func(e *craftEntry) { e.method = 99 }), craftOpts{}),
			problem: map[string]error{"a.dll": container.ErrMember}, want: []string{"b.so"}},
		{name: "deflate64",
			zip:     craft(with(0, func(e *craftEntry) { e.method = 9 }), craftOpts{}),
			problem: map[string]error{"a.dll": container.ErrMember}, want: []string{"b.so"}},
		{name: "symlink",
			zip:     craft(with(1, func(e *craftEntry) { e.creator, e.ext, e.data = 3<<8|30, 0o120777<<16, []byte("/etc/passwd") }), craftOpts{}),
			problem: map[string]error{"b.so": container.ErrMember}, want: []string{"a.dll"}},
		{name: "fifo",
			zip:     craft(with(1, func(e *craftEntry) { e.creator, e.ext, e.data = 3<<8|30, 0o010644<<16, nil }), craftOpts{}),
			problem: map[string]error{"b.so": container.ErrMember}, want: []string{"a.dll"}},
		{name: "directory with data",
			zip:     craft(append(good(), craftEntry{name: "d/", data: []byte("MZ hidden")}), craftOpts{}),
			problem: map[string]error{"d": container.ErrMember}, want: []string{"a.dll", "b.so"}},
		{name: "empty directories are not members",
			zip:  craft(append(good(), craftEntry{name: "d/"}, craftEntry{name: "e/", method: methodDeflate}), craftOpts{}),
			want: []string{"a.dll", "b.so"}},
		{name: "duplicate after cleaning",
			zip:     craft(append(good(), craftEntry{name: "./x/../b.so", data: so}), craftOpts{}),
			problem: map[string]error{"./x/../b.so": container.ErrMember}, want: []string{"a.dll", "b.so"}},
		{name: "duplicate",
			zip:     craft(append(good(), craftEntry{name: "a.dll", data: so}), craftOpts{}),
			problem: map[string]error{"a.dll": container.ErrMember}, want: []string{"a.dll", "b.so"}},
		{name: "absolute name",
			zip:     craft(with(1, func(e *craftEntry) { e.name = "/b.so" }), craftOpts{}),
			problem: map[string]error{"/b.so": container.ErrMember}, want: []string{"a.dll"}},
		{name: "backslash name",
			zip:     craft(with(1, func(e *craftEntry) { e.name = `..\b.so` }), craftOpts{}),
			problem: map[string]error{`..\b.so`: container.ErrMember}, want: []string{"a.dll"}},
		{name: "non-ASCII name not marked UTF-8",
			zip:     craft(with(1, func(e *craftEntry) { e.name = "caf\xc3\xa9.so" }), craftOpts{}),
			problem: map[string]error{"caf\xc3\xa9.so": container.ErrMember}, want: []string{"a.dll"}},
		{name: "UTF-8 name",
			zip:  craft(with(1, func(e *craftEntry) { e.name, e.flags = "café.so", flagUTF8 }), craftOpts{}),
			want: []string{"a.dll", "café.so"}},
		{name: "invalid UTF-8 name",
			zip:     craft(with(1, func(e *craftEntry) { e.name, e.flags = "caf\xe9.so", flagUTF8 }), craftOpts{}),
			problem: map[string]error{"caf\xe9.so": container.ErrMember}, want: []string{"a.dll"}},
		{name: "Unicode Path field names another file",
			zip:     craft(with(1, func(e *craftEntry) { e.extra = unicodePath("b.so", "b.dll") }), craftOpts{}),
			problem: map[string]error{"b.so": container.ErrMember}, want: []string{"a.dll"}},
		{name: "Unicode Path field agrees",
			zip:  craft(with(1, func(e *craftEntry) { e.name, e.extra = "café.so", unicodePath("café.so", "café.so") }), craftOpts{}),
			want: []string{"a.dll", "café.so"}},
		{name: "extra field runs past its end",
			zip: craft(with(1, func(e *craftEntry) { e.extra = []byte{1, 0, 200, 0, 1} }), craftOpts{}), walkErr: signing.ErrMalformed},
		{name: "zip64 field missing",
			zip: craft(with(1, func(e *craftEntry) { e.usize = u32(0xffffffff) }), craftOpts{}), walkErr: signing.ErrMalformed},
		{name: "size past any file",
			zip: craft(with(1, func(e *craftEntry) {
				e.usize = u32(0xffffffff)
				e.extra = []byte{1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0x80}
				e.localExtra = []byte{1, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0xb8, 0xb, 0, 0, 0, 0, 0, 0}
			}), craftOpts{}),
			lim:     &container.Limits{},
			problem: map[string]error{"b.so": signing.ErrMalformed}, want: []string{"a.dll"}},
		{name: "multi-disk", zip: craft(good(), craftOpts{disk: 1}), walkErr: signing.ErrMalformed},
		{name: "bytes after the end record", zip: craft(good(), craftOpts{trailer: []byte{0}}), walkErr: signing.ErrMalformed},
		{name: "end record in the comment",
			zip: craft(good(), craftOpts{comment: craft(nil, craftOpts{})}), walkErr: signing.ErrMalformed},
		{name: "entry count too high", zip: craft(good(), craftOpts{entries: u16(3)}), walkErr: signing.ErrMalformed},
		{name: "entry count too low", zip: craft(good(), craftOpts{entries: u16(1)}), walkErr: signing.ErrMalformed},
		{name: "APK signing block",
			zip: craft(good(), craftOpts{beforeCD: apkBlock(uint64(len(apkBlock(0)) - 8))}), want: []string{"a.dll", "b.so"}},
		{name: "APK signing block with a wrong size",
			zip: craft(good(), craftOpts{beforeCD: apkBlock(uint64(len(apkBlock(0))))}), walkErr: signing.ErrMalformed},
		{name: "too many members",
			zip: craft(good(), craftOpts{}), lim: &container.Limits{MaxMembers: 1}, walkErr: container.ErrLimit},
		{name: "ratio",
			zip:     craft([]craftEntry{{name: "z", data: zeros, method: methodDeflate}}, craftOpts{}),
			lim:     &container.Limits{MaxRatio: 100, RatioGrace: 1 << 20},
			walkErr: container.ErrLimit},
		{name: "expanded size",
			zip: craft(good(), craftOpts{}), lim: &container.Limits{MaxExpandedSize: 10_000}, walkErr: container.ErrLimit},
		{name: "expanded size with what came before",
			zip: craft(good(), craftOpts{}), lim: &container.Limits{MaxExpandedSize: 50_000, Expanded: ptr(int64(10_000))}, walkErr: container.ErrLimit},
		{name: "depth",
			zip: craft(good(), craftOpts{}), lim: &container.Limits{Depth: 9, MaxDepth: 8}, walkErr: container.ErrLimit},
		{name: "spanned marker", zip: append([]byte("PK\x07\x08"), craft(good(), craftOpts{})...), walkErr: signing.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gs, err := walk(t, tc.zip, tc.lim)
			if tc.walkErr != nil {
				if !errors.Is(err, tc.walkErr) {
					t.Fatalf("Walk: %v, want %v", err, tc.walkErr)
				}
				if errors.Is(tc.walkErr, container.ErrLimit) {
					var le *container.LimitError
					if !errors.As(err, &le) || le.Cap == "" {
						t.Errorf("Walk: %v is no LimitError naming a cap", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Walk: %v", err)
			}
			var judged []string
			problems := map[string]error{}
			for _, g := range gs {
				switch {
				case g.m.Problem != nil:
					problems[g.m.Name] = g.m.Problem
				case g.err != nil:
					if want := tc.readErr[g.m.Name]; !errors.Is(g.err, want) || want == nil {
						t.Errorf("reading %s: %v, want %v", g.m.Name, g.err, want)
					}
					delete(tc.readErr, g.m.Name)
				default:
					judged = append(judged, g.m.Name)
				}
			}
			for name, want := range tc.problem {
				if !errors.Is(problems[name], want) {
					t.Errorf("%s: problem %v, want %v", name, problems[name], want)
				}
				delete(problems, name)
			}
			for name, p := range problems {
				t.Errorf("%s: unexpected problem %v", name, p)
			}
			for name, want := range tc.readErr {
				t.Errorf("reading %s: no error, want %v", name, want)
			}
			if len(judged) != len(tc.want) {
				t.Fatalf("judged %q, want %q", judged, tc.want)
			}
			for i := range judged {
				if judged[i] != tc.want[i] {
					t.Fatalf("judged %q, want %q", judged, tc.want)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestUnreadRest checks that Walk reads what the caller leaves of a member
// and reports its corruption, and that it stops at ctx's end.
func TestUnreadRest(t *testing.T) {
	dll := binaryLike(22, 100_000)
	b := craft([]craftEntry{{name: "a.dll", data: dll, method: methodDeflate, crc: u32(1)}}, craftOpts{})
	err := Reader{}.Walk(context.Background(), bytes.NewReader(b), int64(len(b)), "t.zip", nil, func(m *container.Member, r io.Reader) error {
		_, err := io.ReadFull(r, make([]byte, 4096))
		return err
	})
	if !errors.Is(err, signing.ErrMalformed) {
		t.Errorf("Walk over a member read in part: %v, want ErrMalformed", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b = craft([]craftEntry{{name: "a.dll", data: dll}}, craftOpts{})
	if err := (Reader{}).Walk(ctx, bytes.NewReader(b), int64(len(b)), "t.zip", nil, func(*container.Member, io.Reader) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Walk with ctx done: %v", err)
	}
}

// TestCRX walks a Chrome extension (CRX3 and CRX2): a header, then a zip
// whose offsets count from the zip's start.
func TestCRX(t *testing.T) {
	z := craft([]craftEntry{{name: "manifest.json", data: []byte("{}")}, {name: "x.dll", data: binaryLike(23, 5000), method: methodDeflate}}, craftOpts{})
	crx3 := append([]byte("Cr24\x03\x00\x00\x00\x05\x00\x00\x00hdr!!"), z...)
	crx2 := append([]byte("Cr24\x02\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00kkSSS"), z...)
	for name, b := range map[string][]byte{"crx3": crx3, "crx2": crx2} {
		if !(Reader{}).Sniff(b, "x.crx") {
			t.Errorf("%s: Sniff false", name)
		}
		gs, err := walk(t, b, nil)
		if err != nil || len(gs) != 2 || gs[1].m.Name != "x.dll" || gs[1].err != nil {
			t.Errorf("%s: %v, %+v", name, err, gs)
		}
	}
	bad := append([]byte("Cr24\x03\x00\x00\x00\xff\xff\xff\x00"), z...)
	if _, err := walk(t, bad, nil); !errors.Is(err, signing.ErrMalformed) {
		t.Errorf("a CRX header past the end: %v", err)
	}
}

// TestSniff checks what Sniff takes for a zip and what it leaves.
func TestSniff(t *testing.T) {
	z := craft([]craftEntry{{name: "a", data: []byte("x")}}, craftOpts{})
	empty := craft(nil, craftOpts{})
	for _, tc := range []struct {
		name string
		head []byte
		want bool
	}{
		{"zip", z, true},
		{"empty archive", empty, true},
		{"empty archive with a comment", craft(nil, craftOpts{comment: []byte("hi")}), true},
		{"spanned", append([]byte("PK\x07\x08"), z...), true},
		{"PE with a zip appended", append(append([]byte("MZ\x90\x00"), make([]byte, 200)...), z...), false},
		{"ELF with a zip appended", append([]byte("\x7fELF\x02\x01\x01"), z...), false},
		{"end record of a non-empty archive", z[len(z)-endLen:], false},
		{"crx3", append([]byte("Cr24\x03\x00\x00\x00\x01\x00\x00\x00x"), z...), true},
		{"crx3 with a header past head", append([]byte("Cr24\x03\x00\x00\x00\x00\x20\x00\x00"), make([]byte, 5000)...), true},
		{"crx3 without a zip", []byte("Cr24\x03\x00\x00\x00\x01\x00\x00\x00xMZ\x90\x00"), false},
		{"short", []byte("PK"), false},
		{"text", []byte("PK is not a zip"), false},
	} {
		if got := (Reader{}).Sniff(tc.head, "f"); got != tc.want {
			t.Errorf("%s: Sniff %v, want %v", tc.name, got, tc.want)
		}
	}
	gs, err := walk(t, empty, nil)
	if err != nil || len(gs) != 0 {
		t.Errorf("empty archive: %v, %d members", err, len(gs))
	}
}
