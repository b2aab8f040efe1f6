package zip

import (
	stdzip "archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/signing"
)

// fuzzSeeds returns small archives made by zip and Python's zipfile
// (where installed) and by craft.
func fuzzSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	files := map[string][]byte{"a.dll": binaryLike(30, 3000), "d/b.so": binaryLike(31, 700), "e": {}}
	if _, err := exec.LookPath("zip"); err == nil {
		src := tree(f, files)
		for _, args := range [][]string{{"-0"}, {"-9"}, {"-fz"}, {"-y"}, {"-P", "pw"}} {
			out := filepath.Join(f.TempDir(), "s.zip")
			run(f, src, nil, "zip", append(append([]string{"-q", "-r"}, args...), out, ".")...)
			b, err := os.ReadFile(out)
			if err != nil {
				f.Fatal(err)
			}
			seeds = append(seeds, b)
		}
		seeds = append(seeds, run(f, src, nil, "zip", "-q", "-r", "-", "."))
	}
	if _, err := exec.LookPath("python3"); err == nil {
		seeds = append(seeds, python(f, `
import sys, zipfile
class W:
    def __init__(s, f): s.f = f
    def write(s, b): return s.f.write(b)
    def flush(s): s.f.flush()
with open(sys.argv[1], 'wb') as f:
    with zipfile.ZipFile(W(f), 'w', zipfile.ZIP_DEFLATED) as z:
        with z.open('a.dll', 'w', force_zip64=True) as w: w.write(bytes(range(256)) * 10)
        z.writestr('b', b'stored', compress_type=zipfile.ZIP_STORED)
        z.writestr('c', b'bz' * 100, compress_type=zipfile.ZIP_BZIP2)
`))
	}
	so := binaryLike(32, 500)
	seeds = append(seeds,
		craft([]craftEntry{{name: "a", data: so, method: methodDeflate, flags: flagDesc, desc: descriptor(so, 0)}, {name: "b/", data: nil}}, craftOpts{}),
		craft([]craftEntry{{name: "x", data: so, unlisted: true}, {name: "a", data: so}}, craftOpts{beforeCD: apkBlock(uint64(len(apkBlock(0)) - 8))}),
		craft([]craftEntry{{name: "café", data: so, extra: unicodePath("café", "café")}}, craftOpts{comment: []byte("c")}),
		append([]byte("Cr24\x03\x00\x00\x00\x01\x00\x00\x00x"), craft([]craftEntry{{name: "m", data: so}}, craftOpts{})...),
		craft(nil, craftOpts{}),
		zip64ExtensibleZip(), endSignatureAcrossZip(), storedDescriptorZip(), narrowDescriptorZip(), apkHidingZip(),
	)
	return seeds
}

// FuzzWalk walks arbitrary bytes with small caps. It never panics; every
// error wraps ErrMalformed, ErrLimit or ErrMember as documented; and an
// archive Walk reads without any finding is one archive/zip reads to the
// same members and bytes.
func FuzzWalk(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
		f.Add(s[:len(s)/2])
		f.Add(s[:len(s)-1])
		c := bytes.Clone(s)
		c[len(c)/3] ^= 0xff
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := &container.Limits{MaxMembers: 1000, MaxExpandedSize: 32 << 20, MaxRatio: 1100, RatioGrace: 1 << 20, MaxDepth: 8, Depth: 1}
		type member struct {
			name string
			data []byte
		}
		var clean []member
		findings := 0
		err := Reader{}.Walk(context.Background(), bytes.NewReader(b), int64(len(b)), "f.zip", lim, func(m *container.Member, r io.Reader) error {
			if m.Name == "" {
				t.Errorf("a member with no name: %+v", m)
			}
			if (r == nil) != (m.Problem != nil) {
				t.Fatalf("member %q: reader %v, problem %v", m.Name, r != nil, m.Problem)
			}
			if m.Problem != nil {
				findings++
				if !errors.Is(m.Problem, container.ErrMember) && !errors.Is(m.Problem, container.ErrLimit) && !errors.Is(m.Problem, signing.ErrMalformed) {
					t.Errorf("member %q: problem %v wraps none of ErrMember, ErrLimit, ErrMalformed", m.Name, m.Problem)
				}
				return nil
			}
			data, err := io.ReadAll(r)
			if err != nil {
				findings++
				if !errors.Is(err, container.ErrLimit) && !errors.Is(err, signing.ErrMalformed) {
					t.Errorf("member %q: read error %v wraps neither ErrLimit nor ErrMalformed", m.Name, err)
				}
				return nil
			}
			if int64(len(data)) != m.Size {
				t.Errorf("member %q: %d bytes read, Size %d", m.Name, len(data), m.Size)
			}
			clean = append(clean, member{m.Name, data})
			return nil
		})
		if err != nil {
			if !errors.Is(err, container.ErrLimit) && !errors.Is(err, signing.ErrMalformed) {
				t.Errorf("Walk: %v wraps neither ErrLimit nor ErrMalformed", err)
			}
			return
		}
		if findings > 0 || bytes.HasPrefix(b, []byte("Cr24")) {
			return
		}
		// No finding: archive/zip must agree, member for member.
		zr, zerr := stdzip.NewReader(bytes.NewReader(b), int64(len(b)))
		if zerr != nil {
			t.Fatalf("Walk found nothing wrong; archive/zip: %v", zerr)
		}
		var want []member
		for _, zf := range zr.File {
			if strings.HasSuffix(zf.Name, "/") {
				continue
			}
			rc, err := zf.Open()
			if err != nil {
				t.Fatalf("Walk found nothing wrong; archive/zip opens %q: %v", zf.Name, err)
			}
			data, err := io.ReadAll(rc)
			if err != nil {
				t.Fatalf("Walk found nothing wrong; archive/zip reads %q: %v", zf.Name, err)
			}
			name, _ := container.CleanName(zf.Name)
			want = append(want, member{name, data})
		}
		if len(want) != len(clean) {
			t.Fatalf("Walk yields %d members, archive/zip %d files", len(clean), len(want))
		}
		for i := range want {
			if want[i].name != clean[i].name || !bytes.Equal(want[i].data, clean[i].data) {
				t.Fatalf("member %d: Walk %q (%d bytes), archive/zip %q (%d bytes)", i, clean[i].name, len(clean[i].data), want[i].name, len(want[i].data))
			}
		}
	})
}

// FuzzCraft builds an archive from fuzzed fields (names, data, flags,
// methods, attributes, extra fields, bytes between and after members), so
// that the fuzzer reaches the per-member checks, which random bytes seldom
// pass the end record to reach, and checks FuzzWalk's invariants on it.
func FuzzCraft(f *testing.F) {
	f.Add("a.dll", "b/c.so", []byte("MZ\x90\x00data"), uint16(0), uint16(8), uint16(0), uint32(0), []byte{}, []byte{}, byte(0))
	f.Add("a", "a", []byte("x"), uint16(flagDesc), uint16(0), uint16(3<<8), uint32(0o120777<<16), unicodePath("a", "b"), []byte("PK\x03\x04"), byte(1))
	f.Add("d/", "./x", []byte{}, uint16(flagUTF8), uint16(99), uint16(0), uint32(0o40755<<16), []byte{1, 0, 0, 0}, []byte{}, byte(2))
	f.Add("caf\xc3\xa9", "../x", bytes.Repeat([]byte{0}, 5000), uint16(1), uint16(8), uint16(0), uint32(0), []byte{}, apkBlock(uint64(len(apkBlock(0))-8)), byte(3))
	f.Add("s", "t", append([]byte("PK\x07\x08\x00\x00\x00\x00"), make([]byte, 40)...), uint16(flagDesc), uint16(0), uint16(0), uint32(0), []byte{}, []byte{}, byte(0))
	f.Fuzz(func(t *testing.T, n1, n2 string, data []byte, flags, method, creator uint16, ext uint32, extra, gap []byte, mode byte) {
		if len(n1) > 300 || len(n2) > 300 || len(extra) > 300 || len(gap) > 300 || len(data) > 1<<16 {
			return
		}
		e1 := craftEntry{name: n1, data: data, method: method % 10, flags: flags, creator: creator, ext: ext, extra: extra}
		e2 := craftEntry{name: n2, data: data[:len(data)/2], method: methodDeflate}
		if e1.flags&flagDesc != 0 {
			e1.desc = descriptor(data, 0)
			if e1.method != methodDeflate {
				e1.desc[8], e1.desc[9], e1.desc[10], e1.desc[11] = e1.desc[12], e1.desc[13], e1.desc[14], e1.desc[15]
			}
		}
		var o craftOpts
		switch mode % 5 {
		case 1:
			o.between = gap
		case 2:
			o.beforeCD = gap
		case 3:
			o.prefix = gap
		case 4:
			e1.unlisted = true
		}
		if mode&0x80 != 0 {
			e2.offset = u32(0)
		}
		b := craft([]craftEntry{e1, e2}, o)
		lim := &container.Limits{MaxMembers: 10, MaxExpandedSize: 1 << 20, MaxRatio: 1100, RatioGrace: 1 << 16}
		err := Reader{}.Walk(context.Background(), bytes.NewReader(b), int64(len(b)), "f.zip", lim, func(m *container.Member, r io.Reader) error {
			if (r == nil) != (m.Problem != nil) {
				t.Fatalf("member %q: reader %v, problem %v", m.Name, r != nil, m.Problem)
			}
			if m.Problem != nil {
				if !errors.Is(m.Problem, container.ErrMember) && !errors.Is(m.Problem, container.ErrLimit) && !errors.Is(m.Problem, signing.ErrMalformed) {
					t.Errorf("member %q: problem %v wraps none of ErrMember, ErrLimit, ErrMalformed", m.Name, m.Problem)
				}
				return nil
			}
			if _, cerr := container.CleanName(m.Name); cerr != nil {
				t.Errorf("member %q judged under a name CleanName refuses", m.Name)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				if !errors.Is(err, container.ErrLimit) && !errors.Is(err, signing.ErrMalformed) {
					t.Errorf("member %q: read error %v", m.Name, err)
				}
				return nil
			}
			// Which entry it is, by its cleaned name; either, when both
			// names clean to it.
			c1, _ := container.CleanName(n1)
			c2, _ := container.CleanName(n2)
			if (m.Name == c1 || m.Name == c2) && !(m.Name == c1 && bytes.Equal(got, data)) && !(m.Name == c2 && bytes.Equal(got, data[:len(data)/2])) {
				t.Errorf("member %q: %d bytes yielded, not what either entry of that name stores", m.Name, len(got))
			}
			return nil
		})
		if err != nil && !errors.Is(err, container.ErrLimit) && !errors.Is(err, signing.ErrMalformed) {
			t.Errorf("Walk: %v", err)
		}
	})
}
