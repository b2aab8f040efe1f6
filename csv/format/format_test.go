package format

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/signing"
)

func TestFileChangingSizeIsUnreadable(t *testing.T) {
	img := testbin.PE(testbin.PEOptions{})
	p := filepath.Join(t.TempDir(), "a.exe")
	os.WriteFile(p, img, 0o644)
	f, _ := os.Open(p)
	defer f.Close()
	buf := make([]byte, 512)
	n, _ := f.Read(buf)
	// The file was this size at stat time; pretend it is larger now.
	err := Stream(context.Background(), f, buf, n, int64(len(img))+100, nil)
	if !IsChanged(err) {
		t.Errorf("err = %v", err)
	}
}

// TestStreamLastBytesWithEOF: a reader that returns its last bytes with
// io.EOF (a decompressor does) has them streamed, and a streamed file keeps
// the ranges asked for and refuses reads of others.
func TestStreamLastBytesWithEOF(t *testing.T) {
	data := make([]byte, 100000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	buf := make([]byte, 4096)
	head := data[:1000]
	f := NewStreamedFile(iotest.DataErrReader(bytes.NewReader(data[1000:])), int64(len(data)), head, buf)
	if err := f.Keep(50000, 100); err != nil {
		t.Fatal(err)
	}
	if err := f.Keep(int64(len(data))-10, 64); err != nil { // cut to the end
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := f.Stream(context.Background(), &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("streamed %d bytes, want %d equal", got.Len(), len(data))
	}
	for _, r := range [][2]int{{0, 1000}, {50000, 100}, {50010, 20}, {len(data) - 10, 10}} {
		b := make([]byte, r[1])
		if n, err := f.R.ReadAt(b, int64(r[0])); n != r[1] || err != nil || !bytes.Equal(b, data[r[0]:r[0]+r[1]]) {
			t.Errorf("ReadAt(%d, %d): %d, %v", r[0], r[1], n, err)
		}
	}
	if _, err := f.R.ReadAt(make([]byte, 10), 49995); !errors.Is(err, ErrNotKept) {
		t.Errorf("read across a kept range's start: %v", err)
	}
	big := NewStreamedFile(bytes.NewReader(nil), 1<<30, head, buf)
	if err := big.Keep(0, 32<<20); !errors.Is(err, signing.ErrLimit) {
		t.Errorf("keeping 32 MiB: %v", err)
	}
}

// TestWholeFile: a file read whole into the buffer streams every byte
// once (nothing more is read), serves its head and any range from memory.
func TestWholeFile(t *testing.T) {
	data := make([]byte, SniffSize+1000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	buf := make([]byte, 1<<16)
	copy(buf, data)
	f := NewWholeFile(buf, len(data))
	if !bytes.Equal(f.Head, data[:SniffSize]) || f.Size != int64(len(data)) {
		t.Fatalf("head %d bytes, size %d", len(f.Head), f.Size)
	}
	tail := make([]byte, 100)
	if _, err := f.R.ReadAt(tail, int64(len(data)-100)); err != nil || !bytes.Equal(tail, data[len(data)-100:]) {
		t.Fatalf("ReadAt: %v", err)
	}
	var a, b bytes.Buffer
	if err := f.Stream(context.Background(), &a, &b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), data) || !bytes.Equal(b.Bytes(), data) {
		t.Errorf("streamed %d and %d bytes, want the file's %d", a.Len(), b.Len(), len(data))
	}
}
