//go:build linux

package lab_test

import (
	"bytes"
	"errors"
	"os/exec"
	"testing"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/codesignval/csv/attest/bootlog"
	"github.com/codesignval/csv/attest/internal/swtpmtest"
	"github.com/codesignval/csv/attest/lab"
)

// sep separates the TPM's answers in a fuzz input.
var sep = []byte("\xde\xad\xbe\xef")

// scripted answers each command with the next of its answers, then fails.
type scripted struct {
	answers [][]byte
	n       int
}

func (s *scripted) Send([]byte) ([]byte, error) {
	if s.n >= len(s.answers) {
		return nil, errors.New("no more answers")
	}
	s.n++
	return s.answers[s.n-1], nil
}

// recording passes commands to a TPM and keeps its answers.
type recording struct {
	t       transport.TPM
	answers [][]byte
}

func (r *recording) Send(cmd []byte) ([]byte, error) {
	rsp, err := r.t.Send(cmd)
	if err == nil {
		r.answers = append(r.answers, bytes.Clone(rsp))
	}
	return rsp, err
}

// FuzzTPMAnswers: whatever a socket answers (the lab trusts swtpm, but
// anything can listen on a socket), Boot returns a log or an error and
// never panics; the TPM's vendor, banks and PCR values are read with
// bounds. Seeds: swtpm's own answers to a whole Boot (recorded when swtpm
// is installed), cut and corrupted, and hand-made capability answers.
func FuzzTPMAnswers(f *testing.F) {
	if _, err := exec.LookPath("swtpm_setup"); err == nil {
		tp := swtpmtest.NewLab(f).New(f, "fuzz")
		c := tp.Open(f)
		rec := &recording{t: c}
		if _, err := lab.Boot(rec, bootlog.Options{SecureBoot: true}); err != nil {
			f.Fatal(err)
		}
		c.Close()
		whole := bytes.Join(rec.answers, sep)
		f.Add(whole)
		f.Add(whole[:len(whole)/2])
		f.Add(bytes.Join(rec.answers[:3], sep))
		flipped := bytes.Clone(whole)
		for i := 10; i < len(flipped); i += 97 {
			flipped[i] ^= 0x40
		}
		f.Add(flipped)
	}
	f.Add(bytes.Join([][]byte{mustAnswer(fakeTPM{"IBM", "SW  ", " TPM"}), {0x80, 0x01, 0, 0, 0, 10, 0, 0, 1, 1}}, sep))
	f.Add(mustAnswer(fakeTPM{"IFX", "SLB9", "670"}))
	f.Add([]byte{0x80, 0x01, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		tpm := &scripted{answers: bytes.Split(data, sep)}
		raw, err := lab.Boot(tpm, bootlog.Options{SecureBoot: true})
		if err == nil && len(raw) == 0 {
			t.Fatal("no error and no log")
		}
	})
}

func mustAnswer(f fakeTPM) []byte {
	b, _ := f.Send(nil)
	return b
}
