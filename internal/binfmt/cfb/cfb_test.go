package cfb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/internal/testmsi"
	"github.com/codesignval/csv/signing"
)

var dll = bytes.Repeat([]byte("custom action DLL "), 300)

func build(t testing.TB) []byte {
	t.Helper()
	return testmsi.Build(t,
		testmsi.File{Name: "app.exe", Data: testbin.PE(testbin.PEOptions{Data: bytes.Repeat([]byte{7}, 9000)})},
		testmsi.File{Name: "small.dll", Data: testbin.PE(testbin.PEOptions{PE32: true})},
		testmsi.File{Name: "CustomDll", Data: dll, Binary: true},
		testmsi.File{Name: "Tiny", Data: []byte("tiny"), Binary: true},
		testmsi.File{Name: "Big", Data: bytes.Repeat([]byte("0123456789abcdef"), 600), Binary: true},
	)
}

func parse(t testing.TB, b []byte) (*File, error) {
	t.Helper()
	return Parse(bytes.NewReader(b), int64(len(b)))
}

func readStream(t testing.TB, f *File, i int) []byte {
	t.Helper()
	s, err := f.Open(i)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decode is msitools' stream name decoding (the msi package's
// DecodeName, which imports this package).
func decode(s string) string {
	mime := func(x rune) rune {
		switch {
		case x < 10:
			return '0' + x
		case x < 36:
			return 'A' + x - 10
		case x < 62:
			return 'a' + x - 36
		case x == 62:
			return '.'
		}
		return '_'
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 0x3800 && r < 0x4800:
			r -= 0x3800
			b.WriteRune(mime(r & 0x3f))
			b.WriteRune(mime(r >> 6 & 0x3f))
		case r >= 0x4800 && r < 0x4840:
			b.WriteRune(mime(r - 0x4800))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestStreamsMatchMsiinfo: every stream msiinfo lists is a stream of the
// root with the bytes msiinfo extracts, large (FAT) and small (mini
// stream) alike.
func TestStreamsMatchMsiinfo(t *testing.T) {
	msiinfo := testenv.Tool(t, "msiinfo")
	data := build(t)
	path := t.TempDir() + "/p.msi"
	if err := writeFile(path, data); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(msiinfo, "streams", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(out))
	f, err := parse(t, data)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	byName := map[string]int{}
	for _, c := range f.Entries[0].Children {
		n := decode(f.Entries[c].Name)
		byName[n] = c
		if !strings.HasPrefix(n, "\u4840") {
			got = append(got, n)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("streams %q, msiinfo %q", got, want)
	}
	sizes := map[bool]int{}
	for _, n := range want {
		ext, err := exec.Command(msiinfo, "extract", path, n).Output()
		if err != nil {
			t.Fatalf("msiinfo extract %q: %v", n, err)
		}
		c := byName[n]
		if b := readStream(t, f, c); !bytes.Equal(b, ext) {
			t.Errorf("%q: %d bytes, msiinfo %d", n, len(b), len(ext))
		}
		sizes[f.Entries[c].Size < miniCutoff]++
	}
	if sizes[true] == 0 || sizes[false] == 0 {
		t.Errorf("streams in the mini stream and the FAT: %v", sizes)
	}
	if b := readStream(t, f, byName["Binary.CustomDll"]); !bytes.Equal(b, dll) {
		t.Errorf("Binary.CustomDll differs from its source")
	}
}

// corrupt is a wixl package and a way to find its structures.
type corrupt struct {
	data []byte
	f    *File
}

func newCorrupt(t *testing.T) *corrupt {
	data := build(t)
	f, err := parse(t, data)
	if err != nil {
		t.Fatal(err)
	}
	return &corrupt{data, f}
}

func (c *corrupt) entry(name string) *Entry {
	for i := range c.f.Entries {
		if decode(c.f.Entries[i].Name) == name {
			return &c.f.Entries[i]
		}
	}
	panic(name)
}

func (c *corrupt) put32(data []byte, off int64, v uint32) {
	binary.LittleEndian.PutUint32(data[off:], v)
}

// TestHostile: each broken structure is refused as malformed, with no
// panic and no loop.
func TestHostile(t *testing.T) {
	c := newCorrupt(t)
	big := c.entry("Binary.Big")
	small := c.entry("Binary.CustomDll") // over 4096 bytes: FAT
	tiny := c.entry("Binary.Tiny")       // mini stream
	tests := []struct {
		name  string
		edit  func(b []byte) []byte
		limit bool
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }, false},
		{"header only", func(b []byte) []byte { return b[:512] }, false},
		{"bad byte order", func(b []byte) []byte { b[0x1c] = 0; return b }, false},
		{"bad sector shift", func(b []byte) []byte { b[0x1e] = 10; return b }, false},
		{"huge FAT count", func(b []byte) []byte { c.put32(b, 0x2c, 0xfffffff0); return b }, false},
		{"huge DIFAT count", func(b []byte) []byte { c.put32(b, 0x48, 0x7fffffff); return b }, false},
		{"stream chain loops", func(b []byte) []byte {
			c.put32(b, c.f.fatOffset(big.start), big.start)
			return b
		}, false},
		{"two streams share a sector", func(b []byte) []byte {
			c.put32(b, small.Offset+0x74, big.start)
			return b
		}, false},
		{"stream longer than its chain", func(b []byte) []byte {
			c.put32(b, small.Offset+0x78, uint32(small.Size+4096))
			return b
		}, false},
		{"stream past the file", func(b []byte) []byte {
			c.put32(b, big.Offset+0x78, 0x7fffffff)
			return b
		}, false},
		{"v3 size high bits", func(b []byte) []byte {
			c.put32(b, big.Offset+0x7c, 1)
			return b
		}, false},
		{"mini chain loops", func(b []byte) []byte {
			c.put32(b, tiny.Offset+0x74, tiny.start) // fine alone
			mf := c.f.sectorOffset(c.f.miniFATSector(tiny.start)) + int64(tiny.start%128)*4
			c.put32(b, mf, tiny.start)
			c.put32(b, tiny.Offset+0x78, 200) // needs more than one mini sector
			return b
		}, false},
		{"directory loop", func(b []byte) []byte {
			c.put32(b, big.Offset+0x44, 0) // left sibling: the root
			return b
		}, false},
		{"entry in two places", func(b []byte) []byte {
			root := c.f.Entries[0]
			child := binary.LittleEndian.Uint32(b[root.Offset+0x4c:])
			c.put32(b, big.Offset+0x48, child) // right sibling: the tree's root
			return b
		}, false},
		{"duplicate names", func(b []byte) []byte {
			copy(b[tiny.Offset:tiny.Offset+0x42], b[small.Offset:small.Offset+0x42])
			return b
		}, false},
		{"bad name length", func(b []byte) []byte { b[big.Offset+0x40] = 65; return b }, false},
		{"unknown entry type", func(b []byte) []byte { b[big.Offset+0x42] = 3; return b }, false},
		{"FAT sector not marked", func(b []byte) []byte {
			s := binary.LittleEndian.Uint32(b[0x4c:])
			c.put32(b, c.f.fatOffset(s), endOfChain)
			return b
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.edit(bytes.Clone(c.data))
			f, err := parse(t, b)
			var me *signing.MalformedError
			if err == nil {
				// Structures read lazily fail on reading.
				for i := range f.Entries {
					if f.Entries[i].Type == TypeStream {
						if s, err2 := f.Open(i); err2 != nil {
							err = err2
						} else if _, err2 := io.Copy(io.Discard, s); err2 != nil {
							err = err2
						}
					}
				}
			}
			if !errors.As(err, &me) || !errors.Is(err, signing.ErrMalformed) {
				t.Fatalf("got %v, want a *signing.MalformedError", err)
			}
			if tc.limit != errors.Is(err, signing.ErrLimit) {
				t.Errorf("limit: %v", err)
			}
			t.Log(err)
		})
	}
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o600) }

// TestDirectoryCap: a directory of more entries than
// limits.MaxCFBDirectoryEntries is refused as over a cap, by the length of
// its chain, before its entries are read.
func TestDirectoryCap(t *testing.T) {
	root := &Node{Type: TypeRoot}
	for i := range 70000 {
		root.Children = append(root.Children, &Node{Name: "s" + strconv.Itoa(i), Type: TypeStream,
			Open: func() (io.Reader, error) { return bytes.NewReader(nil), nil }})
	}
	var out bytes.Buffer
	if _, err := Write(&out, root, 512); err != nil {
		t.Fatal(err)
	}
	_, err := parse(t, out.Bytes())
	if !errors.Is(err, signing.ErrLimit) || !errors.Is(err, signing.ErrMalformed) {
		t.Fatalf("got %v, want a limit", err)
	}
}
