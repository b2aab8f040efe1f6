package format

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// failWriter fails once it has taken more than n bytes.
type failWriter struct{ n int }

var errWriter = errors.New("writer refuses")

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n -= len(p); w.n < 0 {
		return 0, errWriter
	}
	return len(p), nil
}

// TestStreamAhead: Stream reading ahead (files past streamAheadMin) feeds
// every writer the file's bytes in order, as the sequential read does,
// through readers that return short reads, one byte at a time or their
// last bytes with io.EOF; a file shorter or longer than its size is one
// that changed; a writer's error and a reader's end the stream with it.
func TestStreamAhead(t *testing.T) {
	data := make([]byte, 3*streamAheadMin+12345)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	want := sha256.Sum256(data)
	const head = 4096
	for name, mk := range map[string]func() io.Reader{
		"plain":    func() io.Reader { return bytes.NewReader(data[head:]) },
		"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(data[head:])) },
		"data+EOF": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data[head:])) },
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data[head : head+streamAheadMin+10])) },
	} {
		t.Run(name, func(t *testing.T) {
			buf := make([]byte, 64<<10)
			copy(buf, data[:head])
			size := int64(len(data))
			if name == "one byte" {
				size = head + streamAheadMin + 10
			}
			h1, h2 := sha256.New(), sha256.New()
			if err := Stream(context.Background(), mk(), buf, head, size, []io.Writer{h1, h2}); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data[:size])
			if name != "one byte" && sum != want {
				t.Fatal("test data")
			}
			if !bytes.Equal(h1.Sum(nil), sum[:]) || !bytes.Equal(h2.Sum(nil), sum[:]) {
				t.Error("the writers saw other bytes than the file's")
			}
		})
	}
	stream := func(r io.Reader, size int64, ws ...io.Writer) error {
		buf := make([]byte, 64<<10)
		copy(buf, data[:head])
		if len(ws) == 0 {
			ws = []io.Writer{io.Discard}
		}
		return Stream(context.Background(), r, buf, head, size, ws)
	}
	if err := stream(bytes.NewReader(data[head:]), int64(len(data))+1); !IsChanged(err) {
		t.Errorf("shorter than its size: %v", err)
	}
	if err := stream(bytes.NewReader(data[head:]), int64(len(data))-1); !IsChanged(err) {
		t.Errorf("longer than its size: %v", err)
	}
	if err := stream(bytes.NewReader(data[head:]), int64(len(data)), &failWriter{n: 2 * streamAheadMin}); !errors.Is(err, errWriter) {
		t.Errorf("writer error: %v", err)
	}
	errRead := errors.New("read fails")
	r := io.MultiReader(bytes.NewReader(data[head:2*streamAheadMin]), iotest.ErrReader(errRead))
	if err := stream(r, int64(len(data))); !errors.Is(err, errRead) {
		t.Errorf("reader error: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	buf := make([]byte, 64<<10)
	if err := Stream(ctx, bytes.NewReader(data[head:]), buf, head, int64(len(data)), []io.Writer{io.Discard}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// BenchmarkStream: 48 MiB through Stream into one SHA-256, sequential
// (Stream below streamAheadMin, block by block) against reading ahead.
func BenchmarkStream(b *testing.B) {
	data := make([]byte, 48<<20)
	for i := range data {
		data[i] = byte(i * 13)
	}
	for _, ahead := range []bool{false, true} {
		name := "sequential"
		if ahead {
			name = "ahead"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			buf := make([]byte, 64<<10)
			for b.Loop() {
				h := sha256.New()
				var err error
				if ahead {
					err = Stream(context.Background(), bytes.NewReader(data), buf, 0, int64(len(data)), []io.Writer{h})
				} else {
					err = streamSeq(context.Background(), bytes.NewReader(data), buf, 0, int64(len(data)), []io.Writer{h})
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
