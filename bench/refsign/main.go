//go:build linux

// Command refsign is the bare reference of the signing benchmark: the least
// work any signer must do to sign a build's files into a new tree on this
// machine, with no format at all. For every regular file under IN it reads
// the file once through a 256 KiB buffer, hashes it with SHA-256, writes
// the copy to a temporary file under OUT (starting its writeback at once),
// and signs the digest once with KEY (PKCS#1 v1.5 for RSA, ASN.1 ECDSA);
// then one syncfs and a rename per file put the copies in place, as csv
// sign does to make its output durable.
//
// It parses no PE, builds no PKCS#7, computes no PE checksum and embeds no
// signature: csv sign does all of that on top. What it does cost is what
// signing cannot skip: the digest of every byte, the copy of every byte
// into the new file, one private-key operation per file. So the ratio of
// osslsigncode's time to refsign's is the most any signer in Go could reach
// on this machine, and csv's time against refsign's says how much of that
// csv leaves on the table.
//
// It schedules work as csv sign does: twice GOMAXPROCS workers taking the
// next file from an atomic counter, each with its own buffer.
//
// Usage:
//
//	go run ./bench/refsign KEY IN OUT
//
// KEY is an unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1). OUT must
// not exist; IN's tree is mirrored there. It prints one line: bytes, files, signatures.
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

const bufSize = 256 << 10 // csv's per-worker buffer (internal/limits.ReadBuffer)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: refsign KEY IN OUT")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "refsign:", err)
		os.Exit(1)
	}
}

func run(keyFile, in, out string) error {
	key, err := loadKey(keyFile)
	if err != nil {
		return err
	}
	var files []string
	err = filepath.WalkDir(in, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	if err := os.Mkdir(out, 0o755); err != nil {
		return err
	}
	dir, err := os.Open(out)
	if err != nil {
		return err
	}
	defer dir.Close()

	temps := make([]string, len(files))
	var (
		next, total atomic.Int64
		wg          sync.WaitGroup
		mu          sync.Mutex
		firstErr    error
	)
	for range min(2*runtime.GOMAXPROCS(0), max(len(files), 1)) {
		wg.Go(func() {
			buf := make([]byte, bufSize)
			for {
				k := int(next.Add(1)) - 1
				if k >= len(files) {
					return
				}
				n, err := signOne(key, files[k], filepath.Join(out, fmt.Sprintf(".%d.tmp", k)), buf)
				if err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					continue
				}
				temps[k] = filepath.Join(out, fmt.Sprintf(".%d.tmp", k))
				total.Add(n)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := unix.Syncfs(int(dir.Fd())); err != nil {
		return err
	}
	for k, t := range temps {
		rel, err := filepath.Rel(in, files[k])
		if err != nil {
			return err
		}
		dest := filepath.Join(out, rel)
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			return err
		}
		if err := os.Rename(t, dest); err != nil {
			return err
		}
	}
	if err := dir.Sync(); err != nil {
		return err
	}
	fmt.Printf("refsign: %d bytes, %d files, %d signatures\n", total.Load(), len(files), len(files))
	return nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// signOne copies src to dst while hashing it, starts dst's writeback, and
// signs the digest.
func signOne(key crypto.Signer, src, dst string, buf []byte) (int64, error) {
	f, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	o, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, err
	}
	defer o.Close()
	h := sha256.New()
	var n int64
	for {
		m, err := f.ReadAt(buf, n)
		h.Write(buf[:m])
		if _, werr := o.Write(buf[:m]); werr != nil {
			return n, werr
		}
		n += int64(m)
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return n, err
		}
	}
	_ = unix.SyncFileRange(int(o.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	if _, err := key.Sign(rand.Reader, h.Sum(nil), crypto.SHA256); err != nil {
		return n, err
	}
	return n, nil
}

func loadKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	var k any
	switch b.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("%s: a %T key (RSA or ECDSA only)", path, k)
}
