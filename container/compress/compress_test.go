package compress_test

import (
	stdtar "archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/container/compress"
	"github.com/codesignval/csv/container/internal/ctest"
	"github.com/codesignval/csv/signing"
)

// tools are the compressors, with the arguments that compress standard
// input to standard output, and the readers that read their output.
var tools = []struct {
	tool   string
	args   []string
	reader compress.Reader
	suffix string
}{
	{"gzip", []string{"-9", "-c"}, compress.GzipReader, ".gz"},
	{"xz", []string{"-c"}, compress.XZReader, ".xz"},
	{"zstd", []string{"-q", "-c"}, compress.ZstdReader, ".zst"},
	{"bzip2", []string{"-c"}, compress.Bzip2Reader, ".bz2"},
}

func squeeze(t *testing.T, tool string, args []string, b []byte) []byte {
	t.Helper()
	ctest.Need(t, tool)
	out, err := ctest.Stdin(b, tool, args...)
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	return out
}

// TestModule: a compressed kernel module is one member named after the
// file minus the suffix, the bytes the tool decompresses; several parts
// concatenated (gzip members, xz streams, zstd frames, bzip2 streams) are
// read whole, as the tools read them.
func TestModule(t *testing.T) {
	mod := ctest.Bytes(7, 200_000)
	for _, tc := range tools {
		t.Run(tc.tool, func(t *testing.T) {
			c := squeeze(t, tc.tool, tc.args, mod)
			if !tc.reader.Sniff(c, "x.ko"+tc.suffix) {
				t.Fatal("Sniff does not recognise the tool's output")
			}
			for _, other := range tools {
				if other.reader != tc.reader && other.reader.Sniff(c, "x") {
					t.Errorf("%s's Sniff takes %s's output", other.tool, tc.tool)
				}
			}
			g := ctest.Walk(t, tc.reader, c, "x.ko"+tc.suffix, ctest.Limits())
			if g.Err != nil {
				t.Fatal(g.Err)
			}
			if len(g.Members) != 1 || g.Members[0].Name != "x.ko" || !bytes.Equal(g.Bytes["x.ko"], mod) {
				t.Fatalf("members %+v", g.Members)
			}
			// Two parts: the tool's -d gives both, one after the other.
			two := append(bytes.Clone(c), squeeze(t, tc.tool, tc.args, []byte("second part"))...)
			want, err := ctest.Stdin(two, tc.tool, "-d", "-c")
			if err != nil {
				t.Fatalf("%s -d of two parts: %v", tc.tool, err)
			}
			g = ctest.Walk(t, tc.reader, two, "x.ko"+tc.suffix, ctest.Limits())
			if g.Err != nil {
				t.Fatal(g.Err)
			}
			if !bytes.Equal(g.Bytes["x.ko"], want) {
				t.Fatalf("two parts: %d bytes yielded, %s -d gives %d", len(g.Bytes["x.ko"]), tc.tool, len(want))
			}
		})
	}
}

// TestTar: a compressed tar's members are the tar's, the bytes tar
// extracts.
func TestTar(t *testing.T) {
	ctest.Need(t, "tar")
	files := map[string][]byte{
		"usr/lib/modules/6.1/kernel/x.ko": ctest.Bytes(1, 150_000),
		"usr/bin/app":                     ctest.Bytes(2, 300_000),
		"empty":                           nil,
	}
	for _, tc := range tools {
		t.Run(tc.tool, func(t *testing.T) {
			ctest.Need(t, tc.tool)
			dir := t.TempDir()
			ctest.Tree(t, filepath.Join(dir, "s"), files)
			name := "out.tar" + tc.suffix
			ctest.Run(t, filepath.Join(dir, "s"), "tar", "--use-compress-program="+tc.tool, "-cf", "../"+name, ".")
			c, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(dir, "x"), 0o755); err != nil {
				t.Fatal(err)
			}
			ctest.Run(t, filepath.Join(dir, "x"), "tar", "-xf", "../"+name)
			g := ctest.Walk(t, tc.reader, c, name, ctest.Limits())
			if g.Err != nil {
				t.Fatal(g.Err)
			}
			ctest.Same(t, g.Bytes, ctest.Files(t, filepath.Join(dir, "x")))
			if k := tc.reader.KindOf(ctest.ReaderAt(c), int64(len(c))); k != container.Kind("tar"+tc.suffix) {
				t.Errorf("KindOf = %q", k)
			}
		})
	}
}

func TestStem(t *testing.T) {
	for in, want := range map[string]string{
		"x.ko.xz": "x.ko", "x.ko.zst": "x.ko", "x.ko.gz": "x.ko", "a.TGZ": "a.tar", "a.tar.bz2": "a.tar",
		"a.bin": "a.bin", ".gz": ".gz", "x.zstd": "x", "a.txz": "a.tar",
		// gzip -d and xz -d strip these too.
		"a.ps1-gz": "a.ps1", "a.ps1-z": "a.ps1", "a.ps1_Z": "a.ps1", "a.taz": "a.tar", "a.ps1.lzma": "a.ps1", "a.tlz": "a.tar",
	} {
		if got := compress.Stem(in); got != want {
			t.Errorf("Stem(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMalformed: the tools refuse these too (gzip(1) warns of trailing
// garbage, exit status 2; csv refuses it).
func TestMalformed(t *testing.T) {
	mod := ctest.Bytes(9, 100_000)
	for _, tc := range tools {
		t.Run(tc.tool, func(t *testing.T) {
			c := squeeze(t, tc.tool, tc.args, mod)
			flip := bytes.Clone(c)
			flip[len(flip)/2] ^= 0x20
			for name, b := range map[string][]byte{
				"trailing garbage": append(bytes.Clone(c), "garbage!"...),
				"trailing zeros":   append(bytes.Clone(c), make([]byte, 7)...),
				"cut":              c[:len(c)-5],
				"cut in the data":  c[:len(c)/2],
				"a byte changed":   flip,
			} {
				g := ctest.Walk(t, tc.reader, b, "x.ko"+tc.suffix, ctest.Limits())
				var me *signing.MalformedError
				if !errors.As(g.Err, &me) {
					t.Errorf("%s: Walk: %v, want a MalformedError", name, g.Err)
				}
				cmd := exec.Command(tc.tool, "-d", "-c")
				cmd.Stdin = bytes.NewReader(b)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				err := cmd.Run()
				switch {
				case err != nil:
				case stderr.Len() > 0:
					// gzip and bzip2 warn of trailing garbage and exit 0
					// (gzip 2): csv refuses it.
				case tc.tool == "gzip" && name == "trailing zeros":
					// gzip(1) ignores trailing zeros without a word
					// (tape padding); csv refuses them (see the package
					// documentation).
				default:
					t.Errorf("%s: %s -d accepts without a word what Walk refuses", name, tc.tool)
				}
			}
		})
	}
}

// TestSkippable: zstd skips skippable frames before and between frames,
// as zstd -d does.
func TestSkippable(t *testing.T) {
	ctest.Need(t, "zstd")
	skip := func(n int) []byte {
		b := binary.LittleEndian.AppendUint32(nil, 0x184D2A5A)
		b = binary.LittleEndian.AppendUint32(b, uint32(n))
		return append(b, bytes.Repeat([]byte{0xee}, n)...)
	}
	a := squeeze(t, "zstd", []string{"-q", "-c"}, []byte("first "))
	b := squeeze(t, "zstd", []string{"-q", "-c"}, []byte("second"))
	c := append(append(append(skip(10), a...), skip(3)...), b...)
	want, err := ctest.Stdin(c, "zstd", "-d", "-c")
	if err != nil || string(want) != "first second" {
		t.Fatalf("zstd -d: %q %v", want, err)
	}
	g := ctest.Walk(t, compress.ZstdReader, c, "m.zst", ctest.Limits())
	if g.Err != nil || string(g.Bytes["m"]) != "first second" {
		t.Fatalf("Walk: %q %v", g.Bytes["m"], g.Err)
	}
}

func TestCaps(t *testing.T) {
	zeros := make([]byte, 16<<20)
	lim := func(f func(*container.Limits)) *container.Limits {
		l := ctest.Limits()
		f(l)
		return l
	}
	for _, tc := range []struct {
		name, tool string
		args       []string
		input      []byte
		reader     compress.Reader
		lim        *container.Limits
		cap        string
	}{
		// zstd and xz compress zeros far past 1100:1.
		{"zstd bomb", "zstd", []string{"-q", "-c"}, zeros, compress.ZstdReader, ctest.Limits(), "max-container-ratio"},
		{"xz bomb", "xz", []string{"-c"}, zeros, compress.XZReader, ctest.Limits(), "max-container-ratio"},
		{"gzip ratio", "gzip", []string{"-c"}, zeros[:8<<20], compress.GzipReader, lim(func(l *container.Limits) { l.MaxRatio = 100 }), "max-container-ratio"},
		{"expanded size", "bzip2", []string{"-c"}, ctest.Bytes(3, 2<<20), compress.Bzip2Reader, lim(func(l *container.Limits) { l.MaxExpandedSize = 1 << 20 }), "max-container-size"},
		// Streamed from standard input, zstd keeps the 128 MiB window
		// in the frame header.
		{"zstd window", "zstd", []string{"-q", "-c", "--long=27"}, ctest.Bytes(4, 1<<20), compress.ZstdReader, ctest.Limits(), "max-container-window"},
		{"xz dictionary", "xz", []string{"-c", "--lzma2=dict=128MiB"}, ctest.Bytes(4, 1<<20), compress.XZReader, ctest.Limits(), "max-container-window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := squeeze(t, tc.tool, tc.args, tc.input)
			g := ctest.Walk(t, tc.reader, c, "b", tc.lim)
			var le *container.LimitError
			if !errors.As(g.Err, &le) || le.Cap != tc.cap {
				t.Fatalf("Walk: %v, want the cap %s", g.Err, tc.cap)
			}
		})
	}
}

// TestXZStructure: the dictionary check walks every block of every stream
// through the indexes; files xz makes with several blocks, streams and
// padding pass it, a large dictionary in a later stream is refused before
// decoding.
func TestXZStructure(t *testing.T) {
	in := ctest.Bytes(11, 600_000)
	multi := squeeze(t, "xz", []string{"-c", "--block-size=65536"}, in)
	small := squeeze(t, "xz", []string{"-c"}, []byte("small"))
	padded := append(append(append([]byte(nil), multi...), make([]byte, 8)...), small...)
	want, err := ctest.Stdin(padded, "xz", "-d", "-c")
	if err != nil {
		t.Fatal(err)
	}
	g := ctest.Walk(t, compress.XZReader, padded, "m.xz", ctest.Limits())
	if g.Err != nil || !bytes.Equal(g.Bytes["m"], want) {
		t.Fatalf("blocks, streams and padding: %v, %d bytes of %d", g.Err, len(g.Bytes["m"]), len(want))
	}
	big := squeeze(t, "xz", []string{"-c", "--lzma2=dict=128MiB"}, []byte("big"))
	g = ctest.Walk(t, compress.XZReader, append(append([]byte(nil), small...), big...), "m.xz", ctest.Limits())
	var le *container.LimitError
	if !errors.As(g.Err, &le) || le.Cap != "max-container-window" || len(g.Members) != 0 {
		t.Fatalf("a large dictionary in the second stream: %v, %d members", g.Err, len(g.Members))
	}
}

// TestTarAndBinary: a stream whose first block is both a tar header and
// the start of an ELF or PE file (a tar member named "\x7fELF\x02\x01\x01")
// is blocked: gzip -d lays down a binary that reading it as a tar never
// judges.
func TestTarAndBinary(t *testing.T) {
	for _, start := range []string{"\x7fELF\x02\x01\x01", "MZP"} {
		var buf bytes.Buffer
		tw := stdtar.NewWriter(&buf)
		body := "readme\n"
		if err := tw.WriteHeader(&stdtar.Header{Name: start, Typeflag: stdtar.TypeReg, Size: int64(len(body)), Mode: 0o644, Format: stdtar.FormatUSTAR}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(buf.Bytes(), []byte(start)) {
			t.Fatal("the tar does not start with the binary's magic")
		}
		c := squeeze(t, "gzip", []string{"-c"}, buf.Bytes())
		g := ctest.Walk(t, compress.GzipReader, c, "x.ko.gz", ctest.Limits())
		if !errors.Is(g.Err, signing.ErrMalformed) || len(g.Members) != 0 {
			t.Fatalf("%q: %v %+v, want malformed", start, g.Err, g.Members)
		}
	}
}

// TestLZMAAndUnsupported: a .tar.lzma (tar --lzma, xz --format=lzma) is
// read; lz4, lzip, lzop and .Z files, which csv does not decompress, are
// one member, blocked: they were files of no format, skipped, while
// tar --lzma -x or lz4 -d | tar -x lays down what they hold.
func TestLZMAAndUnsupported(t *testing.T) {
	var buf bytes.Buffer
	tw := stdtar.NewWriter(&buf)
	body := ctest.Bytes(3, 5000)
	if err := tw.WriteHeader(&stdtar.Header{Name: "bin/x.dll", Typeflag: stdtar.TypeReg, Size: int64(len(body)), Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	c := squeeze(t, "xz", []string{"--format=lzma", "-c"}, buf.Bytes())
	for _, name := range []string{"a.tar.lzma", "a.TLZ"} {
		if !compress.LZMAReader.Sniff(c, name) {
			t.Fatalf("LZMAReader does not recognise %s", name)
		}
		g := ctest.Walk(t, compress.LZMAReader, c, name, ctest.Limits())
		if g.Err != nil || !bytes.Equal(g.Bytes["bin/x.dll"], body) {
			t.Fatalf("%s: %v %+v", name, g.Err, g.Members)
		}
	}
	if compress.LZMAReader.Sniff(c, "a.bin") {
		t.Error("LZMAReader takes a file not named .lzma")
	}
	for _, u := range []struct {
		tool string
		args []string
	}{{"lz4", []string{"-q", "-c"}}, {"lzip", []string{"-c"}}, {"lzop", []string{"-c"}}} {
		if _, err := exec.LookPath(u.tool); err != nil {
			continue
		}
		c := squeeze(t, u.tool, u.args, buf.Bytes())
		if !(compress.Unsupported{}).Sniff(c, "a.tar.x") {
			t.Fatalf("%s's output is not recognised", u.tool)
		}
		g := ctest.Walk(t, compress.Unsupported{}, c, "a.tar."+u.tool, ctest.Limits())
		if !errors.Is(g.Err, container.ErrMember) || len(g.Members) != 0 {
			t.Fatalf("%s: %v %+v", u.tool, g.Err, g.Members)
		}
	}
	// compress(1)'s .Z: magic 1F 9D, then block mode and 16 bits.
	if !(compress.Unsupported{}).Sniff([]byte{0x1f, 0x9d, 0x90, 'a'}, "a.Z") {
		t.Error(".Z not recognised")
	}
}

// TestLZMAWindow: a .lzma header declaring a 4 GiB dictionary is refused
// before the decoder allocates it, by Walk and by KindOf.
func TestLZMAWindow(t *testing.T) {
	b := append([]byte{0x5d, 0xff, 0xff, 0xff, 0xff}, bytes.Repeat([]byte{0xff}, 8)...)
	b = append(b, make([]byte, 64)...)
	if !compress.LZMAReader.Sniff(b, "x.lzma") {
		t.Fatal("not recognised")
	}
	g := ctest.Walk(t, compress.LZMAReader, b, "x.lzma", ctest.Limits())
	if !errors.Is(g.Err, container.ErrLimit) {
		t.Fatalf("Walk: %v, want the window cap", g.Err)
	}
	if k := compress.LZMAReader.KindOf(bytes.NewReader(b), int64(len(b))); k != "lzma" {
		t.Fatalf("KindOf: %q", k)
	}
}

// TestTarNameBadHeader: a .tgz (or .tar.gz) whose tar's first header is
// bad is read as a tar and refused, as a loose .tar is: GNU tar skips to
// the next header and extracts from there.
func TestTarNameBadHeader(t *testing.T) {
	blk := make([]byte, 3*512)
	copy(blk, "not a header")
	c := squeeze(t, "gzip", []string{"-c"}, blk)
	for _, name := range []string{"a.tgz", "a.tar.gz"} {
		g := ctest.Walk(t, compress.GzipReader, c, name, ctest.Limits())
		if !errors.Is(g.Err, signing.ErrMalformed) {
			t.Errorf("%s: %v %+v, want malformed", name, g.Err, g.Members)
		}
	}
	if g := ctest.Walk(t, compress.GzipReader, c, "a.bin.gz", ctest.Limits()); g.Err != nil || len(g.Members) != 1 {
		t.Errorf("a.bin.gz: %v %+v", g.Err, g.Members)
	}
}
