package zip

import (
	"bytes"
	"context"
	"io"
	"slices"

	"encoding/binary"
	"errors"
	"github.com/codesignval/csv/container"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codesignval/csv/signing"
)

// localHeader returns a stored member's local header and data.
func localHeader(name string, data []byte) []byte {
	le := binary.LittleEndian
	h := make([]byte, localLen)
	le.PutUint32(h, sigLocal)
	le.PutUint16(h[4:], 20)
	le.PutUint32(h[14:], crc32.ChecksumIEEE(data))
	le.PutUint32(h[18:], uint32(len(data)))
	le.PutUint32(h[22:], uint32(len(data)))
	le.PutUint16(h[26:], uint16(len(name)))
	return append(append(h, name...), data...)
}

// centralRecord returns a stored member's central directory record.
func centralRecord(name string, data []byte, off uint32) []byte {
	le := binary.LittleEndian
	c := make([]byte, centralLen)
	le.PutUint32(c, sigCentral)
	le.PutUint16(c[6:], 20)
	le.PutUint32(c[16:], crc32.ChecksumIEEE(data))
	le.PutUint32(c[20:], uint32(len(data)))
	le.PutUint32(c[24:], uint32(len(data)))
	le.PutUint16(c[28:], uint16(len(name)))
	le.PutUint32(c[42:], off)
	return append(c, name...)
}

func end64(count, cdSize, cdOff uint64, ext []byte) []byte {
	le := binary.LittleEndian
	z := make([]byte, end64Len)
	le.PutUint32(z, sigEnd64)
	le.PutUint64(z[4:], uint64(end64Len-12+len(ext)))
	le.PutUint16(z[12:], 45)
	le.PutUint16(z[14:], 45)
	le.PutUint64(z[24:], count)
	le.PutUint64(z[32:], count)
	le.PutUint64(z[40:], cdSize)
	le.PutUint64(z[48:], cdOff)
	return append(z, ext...)
}

func endRecord(count uint16, cdSize, cdOff uint32) []byte {
	le := binary.LittleEndian
	e := make([]byte, endLen)
	le.PutUint32(e, sigEnd)
	le.PutUint16(e[8:], count)
	le.PutUint16(e[10:], count)
	le.PutUint32(e[12:], cdSize)
	le.PutUint32(e[16:], cdOff)
	return e
}

// pythonNames lists the members Python's zipfile reads in the zip b ("" and
// its error when it refuses it).
func pythonNames(t *testing.T, b []byte) []string {
	t.Helper()
	need(t, "python3")
	p := filepath.Join(t.TempDir(), "x.zip")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("python3", "-c", `import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for i in z.infolist():
    z.read(i)
    print(i.filename)`, p).CombinedOutput()
	if err != nil {
		return []string{"error: " + strings.TrimSpace(string(out))}
	}
	return strings.Fields(string(out))
}

// A zip64 end record with extensible data: Python's zipfile assumes it has
// none and reads the 56 bytes before the locator as the record, which the
// extensible data can hold, with a central directory of its own that lists
// a member hidden in another's bytes.
func zip64ExtensibleZip() []byte {
	evil := binaryLike(7, 500)
	hidden := localHeader("evil.exe", evil)
	readme := append([]byte("hello\n"), hidden...)
	var b []byte
	b = append(b, localHeader("readme.txt", readme)...)
	hiddenOff := uint32(localLen + len("readme.txt") + 6)
	cdOff := len(b)
	b = append(b, centralRecord("readme.txt", readme, 0)...)
	cdSize := len(b) - cdOff
	r64 := len(b)
	fakeCD := centralRecord("evil.exe", evil, hiddenOff)
	fake := end64(1, uint64(len(fakeCD)), uint64(r64+end64Len), nil)
	b = append(b, end64(1, uint64(cdSize), uint64(cdOff), append(fakeCD, fake...))...)
	loc := make([]byte, loc64Len)
	binary.LittleEndian.PutUint32(loc, sigLoc64)
	binary.LittleEndian.PutUint64(loc[8:], uint64(r64))
	binary.LittleEndian.PutUint32(loc[16:], 1)
	b = append(b, loc...)
	b = append(b, endRecord(1, uint32(cdSize), uint32(cdOff))...)

	return b
}

func TestZip64ExtensibleData(t *testing.T) {
	b := zip64ExtensibleZip()
	t.Logf("python reads %q", pythonNames(t, b))
	gs, err := walk(t, b, nil)
	if !errors.Is(err, signing.ErrMalformed) {
		for _, g := range gs {
			t.Logf("csv: %q problem %v", g.m.Name, g.m.Problem)
		}
		t.Fatalf("Walk: %v, want the zip64 end record's extensible data refused", err)
	}
	_ = bytes.Equal
}

// An end record whose comment length is 0x4b50 ("PK") and whose comment
// starts with "\x05\x06": the last "PK\x05\x06" of the file is not the end
// record's signature but one across its comment length and comment, which
// Python's zipfile, Go's archive/zip and unzip, each taking the last
// signature, read as the end record: its fields, in the comment, point at
// a central directory record hidden in a member's bytes.
func endSignatureAcrossZip() []byte {
	le := binary.LittleEndian
	evil := binaryLike(8, 500)
	data := []byte("hello\n")
	hiddenOff := uint32(localLen + len("data.bin") + len(data))
	data = append(data, localHeader("evil.exe", evil)...)
	fakeAt := localLen + len("data.bin") + len(data)
	fakeRec := centralRecord("evil.exe", evil, hiddenOff)
	cd := centralRecord("data.bin", append(bytes.Clone(data), make([]byte, len(fakeRec))...), 0)
	le.PutUint16(fakeRec[32:], uint16(len(cd)+20)) // its comment: the real central directory and end record
	data = append(data, fakeRec...)
	cd = centralRecord("data.bin", data, 0)
	var b []byte
	b = append(b, localHeader("data.bin", data)...)
	cdOff := len(b)
	b = append(b, cd...)
	pos := len(b)
	end := endRecord(1, uint32(len(cd)), uint32(cdOff))
	le.PutUint16(end[20:], 0x4b50)
	b = append(b, end...)
	comment := make([]byte, 0x4b50)
	comment[0], comment[1] = 5, 6
	fake := endRecord(1, uint32(pos+20-fakeAt), uint32(fakeAt))
	copy(comment[2:], fake[4:])
	b = append(b, comment...)

	return b
}

func TestEndSignatureAcrossCommentLength(t *testing.T) {
	b := endSignatureAcrossZip()
	t.Logf("python reads %q", pythonNames(t, b))
	gs, err := walk(t, b, nil)
	if !errors.Is(err, signing.ErrMalformed) {
		for _, g := range gs {
			t.Logf("csv: %q problem %v", g.m.Name, g.m.Problem)
		}
		t.Fatalf("Walk: %v, want the end record refused", err)
	}
}

// sparse is a ReaderAt of head, zeros bytes of zeros, then tail.
type sparse struct {
	head  []byte
	zeros int64
	tail  []byte
}

func (s *sparse) size() int64 { return int64(len(s.head)) + s.zeros + int64(len(s.tail)) }

func (s *sparse) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		o := off + int64(n)
		switch {
		case o < int64(len(s.head)):
			n += copy(p[n:], s.head[o:])
		case o < int64(len(s.head))+s.zeros:
			k := min(int64(len(p)-n), int64(len(s.head))+s.zeros-o)
			clear(p[n : n+int(k)])
			n += int(k)
		case o < s.size():
			n += copy(p[n:], s.tail[o-int64(len(s.head))-s.zeros:])
		default:
			return n, io.EOF
		}
	}
	return n, nil
}

// An APK signing block whose size field, 0x04034b50 as 8 bytes, is a
// local header's signature, version 0 and flags 0: a reader streaming the
// archive from the front (Java's ZipInputStream, bsdtar reading a pipe)
// finds a local header where the block begins and extracts the member it
// holds.
func TestAPKBlockIsLocalHeader(t *testing.T) {
	le := binary.LittleEndian
	a := []byte("hello\n")
	head := localHeader("a.txt", a)
	blockAt := len(head)
	evil := localHeader("evil.exe", binaryLike(9, 500))
	le.PutUint16(evil[4:], 0) // version needed 0: the size's high bytes
	head = append(head, evil...)
	const n = 0x04034b50 // the block's size field: what follows it
	zeros := int64(n - 24 - (len(evil) - 8))
	var tail []byte
	tail = le.AppendUint64(tail, n)
	tail = append(tail, apkSigMagic...)
	cdOff := uint32(int64(len(head)) + zeros + int64(len(tail)))
	cd := centralRecord("a.txt", a, 0)
	tail = append(tail, cd...)
	tail = append(tail, endRecord(1, uint32(len(cd)), cdOff)...)
	s := &sparse{head: head, zeros: zeros, tail: tail}
	if got := le.Uint64(head[blockAt:]); got != n {
		t.Fatalf("size field %#x", got)
	}
	var names []string
	err := Reader{}.Walk(context.Background(), s, s.size(), "t.apk", nil, func(m *container.Member, r io.Reader) error {
		names = append(names, m.Name)
		if m.Name == "evil.exe" && m.Problem == nil {
			t.Errorf("evil.exe judged as a listed member")
		}
		return nil
	})
	if err != nil || !slices.Contains(names, "evil.exe") {
		t.Fatalf("Walk yielded %q, %v: the local header at the APK signing block's start is not reported", names, err)
	}
}

// A stored member with a data descriptor whose bytes hold a data
// descriptor signature followed by the CRC-32 of the bytes before it:
// libarchive, streaming (bsdtar reading a pipe), ends the member there,
// then searches forward for the next local header, which the rest of the
// member's bytes hold.
func storedDescriptorZip() []byte {
	le := binary.LittleEndian
	evil := binaryLike(10, 500)
	pre := []byte("hello\n")
	var data []byte
	data = append(data, pre...)
	data = le.AppendUint32(data, sigDesc)
	data = le.AppendUint32(data, crc32.ChecksumIEEE(pre))
	data = le.AppendUint32(data, uint32(len(pre)))
	data = le.AppendUint32(data, uint32(len(pre)))
	data = append(data, localHeader("evil.exe", evil)...)
	b := craft([]craftEntry{{name: "readme.txt", data: data, flags: flagDesc, desc: func() []byte {
		d := le.AppendUint32(nil, sigDesc)
		d = le.AppendUint32(d, crc32.ChecksumIEEE(data))
		d = le.AppendUint32(d, uint32(len(data)))
		return le.AppendUint32(d, uint32(len(data)))
	}()}, {name: "b.txt", data: []byte("b\n")}}, craftOpts{})
	return b
}

func TestStoredDescriptorInData(t *testing.T) {
	b := storedDescriptorZip()
	if _, err := exec.LookPath("bsdtar"); err == nil {
		cmd := exec.Command("sh", "-c", "cat | bsdtar -tvf -")
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.CombinedOutput()
		t.Logf("bsdtar from a pipe: %v\n%s", err, out)
	}
	gs, err := walk(t, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := byName(gs, "readme.txt")
	if len(g) != 1 || g[0].m.Problem == nil {
		t.Fatalf("readme.txt: %+v, want a problem", g)
	}
	t.Logf("problem: %v", g[0].m.Problem)
	if g := byName(gs, "b.txt"); len(g) != 1 || g[0].m.Problem != nil || g[0].err != nil {
		t.Fatalf("b.txt: %+v", g)
	}
}

// earlyDescriptor finds a descriptor at the member's start and across the
// boundaries of its reads, none in a member of legitimate bytes or of
// nothing but descriptor signatures (in linear time), and none at the end,
// where the real one is.
func TestEarlyDescriptor(t *testing.T) {
	le := binary.LittleEndian
	at := func(data []byte, k int) []byte {
		d := bytes.Clone(data)
		le.PutUint32(d[k:], sigDesc)
		le.PutUint32(d[k+4:], crc32.ChecksumIEEE(d[:k]))
		return d
	}
	base := binaryLike(11, 200_000)
	sigs := bytes.Repeat([]byte("PK\x07\x08"), 5<<20/4)
	for _, tc := range []struct {
		name string
		data []byte
		want int64
	}{
		{"none", base, -1},
		{"at 0", at(base, 0), 0},
		{"at 6", at(base, 6), 6},
		{"across a read", at(base, 32<<10-8-3), 32<<10 - 8 - 3},
		{"after a read", at(base, 32<<10-8), 32<<10 - 8},
		{"second read", at(base, 100_000), 100_000},
		{"last 8 bytes", at(base, len(base)-8), int64(len(base) - 8)},
		{"only signatures", sigs, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			desc := le.AppendUint32(nil, sigDesc)
			desc = le.AppendUint32(desc, crc32.ChecksumIEEE(tc.data))
			desc = le.AppendUint32(desc, uint32(len(tc.data)))
			desc = le.AppendUint32(desc, uint32(len(tc.data)))
			b := craft([]craftEntry{{name: "x.bin", data: tc.data, flags: flagDesc, desc: desc}}, craftOpts{})
			a, err := readArchive(context.Background(), bytes.NewReader(b), int64(len(b)), &container.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			w := &walker{ctx: context.Background(), src: bytes.NewReader(b), buf: make([]byte, 32<<10)}
			start := time.Now()
			k, err := w.earlyDescriptor(&a.entries[0])
			if err != nil || k != tc.want {
				t.Fatalf("earlyDescriptor: %d, %v; want %d", k, err, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// A local header whose extra field holds an Info-ZIP Unicode Path field
// the central directory's does not: unzip reads the local extra field and
// extracts the member under that name.
func localUnicodePathZip() []byte {
	return craft([]craftEntry{{name: "notes.txt", data: []byte("Write-Host evil\n"), localExtra: unicodePath("notes.txt", "run.ps1")}}, craftOpts{})
}

// bsdtarNames lists what bsdtar (libarchive) reads in the zip b, from a
// file and from a pipe.
func bsdtarNames(t *testing.T, b []byte) string {
	t.Helper()
	if _, err := exec.LookPath("bsdtar"); err != nil {
		return "bsdtar is not installed"
	}
	p := filepath.Join(t.TempDir(), "x.zip")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	file, _ := exec.Command("bsdtar", "-tvf", p).CombinedOutput()
	cmd := exec.Command("sh", "-c", "cat | bsdtar -tvf -")
	cmd.Stdin = bytes.NewReader(b)
	pipe, _ := cmd.CombinedOutput()
	return "file:\n" + string(file) + "pipe:\n" + string(pipe)
}

// TestLocalExtraFields: libarchive reads the local header's extra fields
// and takes its Unicode Path field for the member's name, its 'xl' field
// for the member's file type; a local header whose fields say other than
// the central directory is a finding.
func TestLocalExtraFields(t *testing.T) {
	for _, tc := range []struct {
		name string
		zip  []byte
		want string // the member csv reports, with a problem
	}{
		{"local Unicode Path", localUnicodePathZip(), "notes.txt"},
		{"local xl: a symbolic link", localXLZip(), "tool.exe"},
		{"central xl: a symbolic link", craft([]craftEntry{{name: "tool.exe", data: []byte("/opt/other/evil.exe"), creator: 3<<8 | 30, ext: 0o100644 << 16, extra: xlField(3<<8|30, 0o120777<<16)}}, craftOpts{}), "tool.exe"},
		{"xl: another system", craft([]craftEntry{{name: "tool.exe", data: []byte("x"), creator: 0, ext: 0o120777 << 16, localExtra: xlField(3<<8|30, 0o120777<<16)}}, craftOpts{}), "tool.exe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Logf("bsdtar: %s", bsdtarNames(t, tc.zip))
			gs, err := walk(t, tc.zip, nil)
			if err != nil {
				t.Fatal(err)
			}
			g := byName(gs, tc.want)
			if len(g) != 1 || g[0].m.Problem == nil {
				t.Fatalf("%s: %+v, want a problem", tc.want, gs)
			}
			t.Logf("problem: %v", g[0].m.Problem)
		})
	}
	// Agreeing fields, as libarchive writes them, are no finding.
	ok := craft([]craftEntry{{name: "a.txt", data: []byte("a"), creator: 3<<8 | 30, ext: 0o100644 << 16,
		localExtra: append(xlField(3<<8|30, 0o100644<<16), unicodePath("a.txt", "a.txt")...)}}, craftOpts{})
	gs, err := walk(t, ok, nil)
	if err != nil || len(gs) != 1 || gs[0].m.Problem != nil || gs[0].err != nil {
		t.Fatalf("agreeing local fields: %+v, %v", gs, err)
	}
}

// xlField returns libarchive's experimental 'xl' extra field holding a
// version made by and external attributes.
func xlField(creator uint16, ext uint32) []byte {
	b := binary.LittleEndian.AppendUint16(nil, 0x6c78)
	b = binary.LittleEndian.AppendUint16(b, 7)
	b = append(b, 1|4)
	b = binary.LittleEndian.AppendUint16(b, creator)
	return binary.LittleEndian.AppendUint32(b, ext)
}

// A local header whose 'xl' extra field says the member is a symbolic
// link, the central directory a regular file: libarchive takes the local
// header's mode and creates a link.
func localXLZip() []byte {
	return craft([]craftEntry{{name: "tool.exe", data: []byte("/opt/other/evil.exe"), creator: 3<<8 | 30, ext: 0o100644 << 16, localExtra: xlField(3<<8|30, 0o120777<<16)}}, craftOpts{})
}

// SniffTail recognises a zip by its end record, whatever comes before it.
func TestSniffTail(t *testing.T) {
	z := craft([]craftEntry{{name: "evil.exe", data: binaryLike(12, 300)}}, craftOpts{comment: []byte("c")})
	for _, tc := range []struct {
		name string
		tail []byte
		want bool
	}{
		{"a zip", z, true},
		{"a zip behind a script", append([]byte("#!/bin/sh\nexit 0\n"), z...), true},
		{"bytes after it", append(bytes.Clone(z), 'x'), false},
		{"no end record", binaryLike(13, 1000), false},
		{"short", []byte("PK\x05\x06"), false},
	} {
		if got := (Reader{}).SniffTail(tc.tail); got != tc.want {
			t.Errorf("%s: SniffTail %v, want %v", tc.name, got, tc.want)
		}
	}
}

// zip64Extra returns a local zip64 extra field holding both sizes.
func zip64Extra(usize, csize uint64) []byte {
	b := binary.LittleEndian.AppendUint16(nil, extraZip64)
	b = binary.LittleEndian.AppendUint16(b, 16)
	b = binary.LittleEndian.AppendUint64(b, usize)
	return binary.LittleEndian.AppendUint64(b, csize)
}

// A deflated member with a data descriptor of 4-byte sizes after a local
// header with a zip64 extra field: libarchive, streaming, reads 8-byte
// sizes (24 bytes), 8 bytes into the next local header, then searches on
// for a local header, and finds the one the next member's bytes hide.
func narrowDescriptorZip() []byte {
	a := binaryLike(14, 3000)
	evil := binaryLike(15, 500)
	hide := append([]byte("hello\n"), localHeader("evil.exe", evil)...)
	return craft([]craftEntry{
		{name: "a.bin", data: a, method: methodDeflate, flags: flagDesc, desc: descriptor(a, 0), localExtra: zip64Extra(0, 0)},
		{name: "readme.txt", data: hide},
	}, craftOpts{})
}

func TestNarrowDescriptorAfterZip64(t *testing.T) {
	b := narrowDescriptorZip()
	t.Logf("bsdtar: %s", bsdtarNames(t, b))
	gs, err := walk(t, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g := byName(gs, "a.bin"); len(g) != 1 || g[0].m.Problem == nil {
		t.Fatalf("a.bin: %+v, want a problem", gs)
	}
}

// An APK signing block whose pairs hold a local header: libarchive,
// streaming, searches forward from the end of the last member for a local
// header and finds it inside the block.
func apkHidingZip() []byte {
	le := binary.LittleEndian
	evil := localHeader("evil.exe", binaryLike(16, 500))
	var pair []byte
	pair = le.AppendUint64(pair, uint64(4+len(evil)))
	pair = le.AppendUint32(pair, 0x7109871a)
	pair = append(pair, evil...)
	n := uint64(len(pair) + 8 + 16)
	var block []byte
	block = le.AppendUint64(block, n)
	block = append(block, pair...)
	block = le.AppendUint64(block, n)
	block = append(block, apkSigMagic...)
	return craft([]craftEntry{{name: "a.txt", data: []byte("hello\n")}}, craftOpts{beforeCD: block})
}

func TestAPKBlockHidesLocalHeader(t *testing.T) {
	b := apkHidingZip()
	t.Logf("bsdtar: %s", bsdtarNames(t, b))
	gs, err := walk(t, b, nil)
	if err == nil && len(byName(gs, "evil.exe")) == 0 {
		t.Fatalf("Walk: %d members, nil: the local header in the APK signing block is not reported", len(gs))
	}
	t.Logf("Walk: %v", err)
}
