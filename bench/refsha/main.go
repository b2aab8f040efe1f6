// Command refsha is the bare reference of the csv benchmark: the physical
// limit of reading and hashing a build tree on this machine. It walks DIR
// (regular files only, symbolic links not followed), then hashes every
// file's whole content with crypto/sha256 on GOMAXPROCS workers. It does no
// parsing and no judging.
//
// To be fair to both sides it schedules work the way csv validate does:
// files sorted largest first, workers taking the next index from an atomic
// counter, each worker streaming through its own fixed 256 KiB buffer with
// (*os.File).Read (no io.Copy, no mmap).
//
// Usage:
//
//	go run ./bench/refsha [-verify KEY] DIR
//
// With -verify KEY (an unencrypted PEM private key, RSA or ECDSA), it also
// verifies one signature per file with KEY's public key, after hashing the
// file: a signature made once, before the timed work, over a fixed digest.
// That is the least any verifier of a tree of signed files must do (one
// public-key operation per file on top of reading and hashing it), the
// reference for trees whose every file carries a signature
// (bench/windows.sh).
//
// It prints one line: total bytes hashed, file count and digest count.
package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/codesignval/csv/container"
	_ "github.com/codesignval/csv/container/all"
)

// members: hash containers' members (-members); hashed counts them.
var (
	members bool
	hashed  atomic.Int64
)

// hashMembers hashes the file at p, or, when it is a container, every
// member in it (nested containers too), and returns the bytes hashed.
func hashMembers(p string, h hash.Hash, buf []byte) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	n, err := io.ReadFull(f, buf[:min(int64(container.SniffSize), st.Size())])
	if err != nil {
		return 0, err
	}
	r := container.Sniff(buf[:n], filepath.Base(p))
	if r == nil {
		return hashFile(p, h, buf)
	}
	var total, expanded int64
	err = walkMembers(r, f, st.Size(), filepath.Base(p), 1, &expanded, h, buf, &total)
	return total, err
}

func walkMembers(r container.Reader, src io.ReaderAt, size int64, name string, depth int, expanded *int64, h hash.Hash, buf []byte, total *int64) error {
	lim := container.Limits{Depth: depth, MaxDepth: 8, Expanded: expanded}
	return r.Walk(context.Background(), src, size, name, &lim, func(m *container.Member, mr io.Reader) error {
		if mr == nil {
			return nil
		}
		n, err := io.ReadFull(mr, buf[:container.SniffSize])
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return err
		}
		if nested := container.Sniff(buf[:n], filepath.Base(m.Name)); nested != nil {
			data, err := io.ReadAll(io.MultiReader(bytes.NewReader(slices.Clone(buf[:n])), mr))
			if err != nil {
				return err
			}
			return walkMembers(nested, bytes.NewReader(data), int64(len(data)), filepath.Base(m.Name), depth+1, expanded, h, buf, total)
		}
		hashed.Add(1)
		h.Reset()
		h.Write(buf[:n])
		c, err := io.CopyBuffer(h, mr, buf)
		*total += int64(n) + c
		h.Sum(nil)
		return err
	})
}

// bufSize matches csv's per-worker read buffer (internal/limits.ReadBuffer).
const bufSize = 256 << 10

type file struct {
	path string
	size int64
}

func main() {
	keyFile := flag.String("verify", "", "also verify one signature per file with this PEM private key's public key")
	flag.BoolVar(&members, "members", false, "hash every member of every container (archive, package, image, compressed file) instead of the container, decompressing with csv's readers, nested containers held in memory as csv holds them")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: refsha [-verify KEY] [-members] DIR")
		os.Exit(2)
	}
	var verify func() bool
	if *keyFile != "" {
		var err error
		if verify, err = verifier(*keyFile); err != nil {
			fmt.Fprintln(os.Stderr, "refsha:", err)
			os.Exit(1)
		}
	}
	files, err := walk(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "refsha:", err)
		os.Exit(1)
	}
	// Largest first, as csv schedules: a big file started last would leave
	// the other workers idle at the end.
	slices.SortStableFunc(files, func(a, b file) int { return cmp.Compare(b.size, a.size) })

	digests := make([]string, len(files))
	var (
		next     atomic.Int64
		total    atomic.Int64
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	workers := min(runtime.GOMAXPROCS(0), max(len(files), 1))
	for range workers {
		wg.Go(func() {
			buf := make([]byte, bufSize)
			h := sha256.New()
			for {
				k := int(next.Add(1)) - 1
				if k >= len(files) {
					return
				}
				hf := hashFile
				if members {
					hf = hashMembers
				}
				n, err := hf(files[k].path, h, buf)
				if err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
					continue
				}
				total.Add(n)
				digests[k] = hex.EncodeToString(h.Sum(nil))
				if verify != nil && !verify() {
					errMu.Lock()
					firstErr = errors.New("a signature did not verify")
					errMu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		fmt.Fprintln(os.Stderr, "refsha:", firstErr)
		os.Exit(1)
	}
	nd := 0
	for _, d := range digests {
		if d != "" {
			nd++
		}
	}
	fmt.Printf("refsha: %d bytes, %d files, %d digests, %d members\n", total.Load(), len(files), nd, hashed.Load())
}

// verifier signs a fixed digest once with the key in file and returns a
// function that verifies that signature with the public key.
func verifier(file string) (func() bool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", file)
	}
	var key any
	if key, err = x509.ParsePKCS8PrivateKey(blk.Bytes); err != nil {
		if key, err = x509.ParsePKCS1PrivateKey(blk.Bytes); err != nil {
			if key, err = x509.ParseECPrivateKey(blk.Bytes); err != nil {
				return nil, fmt.Errorf("%s: not a PKCS#8, PKCS#1 or SEC1 private key", file)
			}
		}
	}
	digest := sha256.Sum256([]byte("refsha"))
	switch k := key.(type) {
	case *rsa.PrivateKey:
		sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:])
		if err != nil {
			return nil, err
		}
		return func() bool { return rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, digest[:], sig) == nil }, nil
	case *ecdsa.PrivateKey:
		sig, err := ecdsa.SignASN1(rand.Reader, k, digest[:])
		if err != nil {
			return nil, err
		}
		return func() bool { return ecdsa.VerifyASN1(&k.PublicKey, digest[:], sig) }, nil
	}
	return nil, fmt.Errorf("%s: not an RSA or ECDSA key", file)
}

// walk lists the regular files under dir with their sizes. Symbolic links
// and other non-regular entries are skipped, never followed.
func walk(dir string) ([]file, error) {
	var files []file
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, file{path: p, size: info.Size()})
		return nil
	})
	return files, err
}

// hashFile resets h and feeds it the whole file at path through buf. It
// returns the number of bytes hashed.
func hashFile(path string, h hash.Hash, buf []byte) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	h.Reset()
	var total int64
	for {
		n, err := f.Read(buf)
		h.Write(buf[:n])
		total += int64(n)
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}
