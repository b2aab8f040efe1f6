// Package formattest runs format handlers the way csv's pipeline does, for
// the handlers' tests and fuzz targets: one read of the file feeding the
// digests the handler adds, then its finish.
package formattest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
)

// Result is what inspecting a file found.
type Result struct {
	Facts   format.Facts
	Digests cipolicy.Digests
	// Err is the handler's error (from Inspect or its finish), if any.
	Err error
}

// Inspect runs h on data as the pipeline does, asking for need: Inspect,
// one read of the whole file, then the finish. A panic is not recovered
// (the pipeline recovers; a handler's tests want to see it).
func Inspect(h format.Handler, data []byte, need cipolicy.Needs, certs []*signing.Certificate) *Result {
	return InspectNamed(h, "", data, need, certs)
}

// InspectNamed is Inspect of a file named name (File.Name, which formats
// without magic numbers, scripts, are recognised by).
func InspectNamed(h format.Handler, name string, data []byte, need cipolicy.Needs, certs []*signing.Certificate) *Result {
	r := bytes.NewReader(data)
	buf := make([]byte, 64<<10)
	n, _ := r.Read(buf[:min(len(data), format.SniffSize)])
	f := format.NewFile(r, int64(len(data)), buf, n)
	f.Name = name
	var p format.Pass
	res := &Result{}
	opts := &format.InspectOptions{Certificates: certs, Cache: authenticode.NewCertCache()}
	finish, err := h.Inspect(f, need, opts, &p, &res.Facts)
	if err != nil {
		res.Err = err
		return res
	}
	if err := f.Stream(context.Background(), p.Writers()...); err != nil {
		res.Err = err
		return res
	}
	if res.Digests, err = p.Done(); err != nil {
		res.Err = err
		return res
	}
	if finish != nil {
		res.Err = finish()
	}
	return res
}

// Sniff runs h's Sniff on data.
// InspectStreamed inspects data as a file read once, front to back
// (format.NewStreamedFile), with h's InspectStream.
func InspectStreamed(h format.Streamer, data []byte, need cipolicy.Needs, certs []*signing.Certificate) *Result {
	buf := make([]byte, 64<<10)
	hn := min(len(data), limits.StreamHead)
	f := format.NewStreamedFile(bytes.NewReader(data[hn:]), int64(len(data)), data[:hn], buf)
	var p format.Pass
	res := &Result{}
	opts := &format.InspectOptions{Certificates: certs, Cache: authenticode.NewCertCache()}
	finish, err := h.InspectStream(f, need, opts, &p, &res.Facts)
	if err != nil {
		res.Err = err
		return res
	}
	if err := f.Stream(context.Background(), p.Writers()...); err != nil {
		res.Err = err
		return res
	}
	if res.Digests, err = p.Done(); err != nil {
		res.Err = err
		return res
	}
	if finish != nil {
		res.Err = finish()
	}
	return res
}

// CheckStreamed checks that data inspected as it streams by (InspectStreamed)
// is judged as data read by random access: an error where the held
// reading has one (it may find more: bytes it did not keep), else the same
// signed flag and digests, and no more signatures verified.
func CheckStreamed(t testing.TB, h format.Streamer, data []byte, need cipolicy.Needs, certs []*signing.Certificate) {
	t.Helper()
	held, streamed := Inspect(h, data, need, certs), InspectStreamed(h, data, need, certs)
	CheckInvariants(t, streamed, need)
	if held.Err != nil || streamed.Err != nil {
		if held.Err != nil && streamed.Err == nil {
			t.Fatalf("held: %v; streamed: no error", held.Err)
		}
		return
	}
	if held.Facts.Signed != streamed.Facts.Signed {
		t.Fatalf("signed: held %v, streamed %v", held.Facts.Signed, streamed.Facts.Signed)
	}
	for a, d := range held.Digests {
		if !bytes.Equal(d, streamed.Digests.Get(a)) {
			t.Fatalf("%s: held %x, streamed %x", a, d, streamed.Digests.Get(a))
		}
	}
	verified := func(r *Result) (n int) {
		for _, s := range r.Facts.Signatures {
			if s.Verified() {
				n++
			}
		}
		return n
	}
	if verified(streamed) > verified(held) {
		t.Fatalf("streamed: %d signatures verified, held %d", verified(streamed), verified(held))
	}
}

func Sniff(h format.Handler, data []byte) bool { return SniffNamed(h, "", data) }

// SniffNamed runs h's Sniff on data, a file named name.
func SniffNamed(h format.Handler, name string, data []byte) bool {
	r := bytes.NewReader(data)
	buf := make([]byte, format.SniffSize)
	n, _ := r.Read(buf[:min(len(data), format.SniffSize)])
	f := format.NewFile(r, int64(len(data)), buf, n)
	f.Name = name
	return h.Sniff(f)
}

// Sign signs data with h into a temporary file and returns the signed
// bytes.
func Sign(t testing.TB, h format.Handler, data []byte, opts *format.SignOptions) []byte {
	t.Helper()
	return SignNamed(t, h, "", data, opts)
}

// SignNamed is Sign of a file named name.
func SignNamed(t testing.TB, h format.Handler, name string, data []byte, opts *format.SignOptions) []byte {
	t.Helper()
	r := bytes.NewReader(data)
	buf := make([]byte, 64<<10)
	n, _ := r.Read(buf[:min(len(data), format.SniffSize)])
	out, err := os.Create(filepath.Join(t.TempDir(), "signed"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	f := format.NewFile(r, int64(len(data)), buf, n)
	f.Name = name
	if _, err := h.Sign(context.Background(), f, out, opts); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// CheckInvariants fails t if what inspecting a file found breaks what
// every handler promises: an error is a *format.MalformedError (a
// bytes.Reader does not fail), and a signed file's signatures, when they
// are asked for, are reported.
func CheckInvariants(t testing.TB, res *Result, need cipolicy.Needs) {
	t.Helper()
	if res.Err != nil {
		var me *format.MalformedError
		if !errors.As(res.Err, &me) {
			t.Fatalf("error %v (%T) is not a *format.MalformedError", res.Err, res.Err)
		}
		return
	}
	if res.Facts.Signed && need.Signatures && len(res.Facts.Signatures) == 0 {
		t.Fatalf("a signed file with no signatures")
	}
}
