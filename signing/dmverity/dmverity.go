// Package dmverity computes, writes, reads and verifies dm-verity hash
// trees as `veritysetup format` makes them (format version 1, SHA-256),
// and verifies and makes the detached PKCS#7 signatures of root hashes
// that systemd (IMAGE.roothash.p7s) and the kernel's
// root_hash_sig_key_desc check.
//
// # The hash tree
//
// The data device is cut into data blocks (DataBlockSize, 4096 by
// default); each is hashed as SHA-256(salt || block) (format 1: the salt
// first). The hashes are packed HashBlockSize/32 to a hash block, the last
// block of each level zero-padded, and the hash blocks are hashed the same
// way into the level above, until one hash block is left; the root hash is
// the salted hash of that block (of the only data block, when there is
// one). On the hash device, the 512-byte superblock ([Superblock]) fills
// the first hash block, then the levels follow from the top one down to
// level 0. A [Hasher] streams the data once, in constant memory (one
// pending block per level), and hands each finished hash block to a
// callback: [Format] writes them to a hash device, [Verify] compares them
// with those of an existing hash device.
//
// # Security
//
// The data and a hash device are untrusted. [ParseSuperblock] checks every
// field of the superblock (signature, version, hash type, algorithm, block
// sizes, salt, padding) and the data size against caps
// (internal/limits) before anything is allocated from it; the tree's
// shape then follows from the number of data blocks, and verification
// reads one hash block at a time. A root hash signature is parsed as a
// bounded detached PKCS#7 (signing/internal/detached); who signed is
// reported, whether that signer is trusted is policy (cipolicy).
package dmverity

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/bits"
	"runtime"
	"sync"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
)

// MalformedFormat names dm-verity structures in a *signing.MalformedError.
const MalformedFormat = "dm-verity"

// HashSize is the size of a SHA-256 digest.
const HashSize = sha256.Size

// DefaultBlockSize is veritysetup's default data and hash block size.
const DefaultBlockSize = 4096

// MaxLevels is the deepest tree (VERITY_MAX_LEVELS in cryptsetup).
const MaxLevels = 63

// Params are a tree's parameters: what a superblock holds beside the UUID.
// The zero value is veritysetup's defaults without a salt (4096-byte
// blocks); veritysetup format draws a random 32-byte salt unless given
// --salt.
type Params struct {
	// DataBlockSize and HashBlockSize are powers of two from 512 to
	// limits.MaxVerityBlockSize (0: 4096).
	DataBlockSize, HashBlockSize int
	// Salt is prepended to every hashed block (at most 256 bytes).
	Salt []byte
}

func malformed(off int64, format string, args ...any) error {
	return &signing.MalformedError{Format: MalformedFormat, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// ErrParams is wrapped by the errors of parameters that cannot make a tree.
var ErrParams = errors.New("dmverity: invalid parameters")

func (p *Params) normalize() error {
	if p.DataBlockSize == 0 {
		p.DataBlockSize = DefaultBlockSize
	}
	if p.HashBlockSize == 0 {
		p.HashBlockSize = DefaultBlockSize
	}
	for _, b := range []int{p.DataBlockSize, p.HashBlockSize} {
		if b < 512 || b > limits.MaxVerityBlockSize || b&(b-1) != 0 {
			return fmt.Errorf("%w: block size %d is not a power of two from 512 to %d", ErrParams, b, limits.MaxVerityBlockSize)
		}
	}
	if len(p.Salt) > limits.MaxVeritySalt {
		return fmt.Errorf("%w: the salt is %d bytes, over the limit of %d", ErrParams, len(p.Salt), limits.MaxVeritySalt)
	}
	return nil
}

// Layout is where a tree's levels lie on the hash device.
type Layout struct {
	Params
	// DataBlocks is the number of data blocks the tree covers.
	DataBlocks uint64
	// Levels is the number of hash levels (0 for a single data block,
	// whose salted hash is the root hash).
	Levels int
	// levelStart[i] is the hash block (on the device, superblock
	// included) where level i starts; levelSize[i] its number of blocks.
	levelStart, levelSize []uint64
	// start is the first hash block after the superblock.
	start uint64
}

// NewLayout returns the layout of the tree over dataBlocks data blocks
// (at least one) with the superblock in the first hash block, as
// veritysetup format lays it out.
func NewLayout(p Params, dataBlocks uint64) (*Layout, error) {
	if err := p.normalize(); err != nil {
		return nil, err
	}
	if dataBlocks == 0 {
		return nil, fmt.Errorf("%w: no data blocks", ErrParams)
	}
	if dataBlocks > limits.MaxVerityDataSize/uint64(p.DataBlockSize) {
		return nil, fmt.Errorf("%w: %d data blocks of %d bytes, over the limit of %d bytes", ErrParams, dataBlocks, p.DataBlockSize, uint64(limits.MaxVerityDataSize))
	}
	l := &Layout{Params: p, DataBlocks: dataBlocks}
	perBits := bits.Len(uint(p.HashBlockSize/HashSize)) - 1
	for perBits*l.Levels < 64 && (dataBlocks-1)>>(perBits*l.Levels) != 0 {
		l.Levels++
	}
	if l.Levels > MaxLevels {
		return nil, fmt.Errorf("%w: %d levels", ErrParams, l.Levels)
	}
	l.start = uint64((SuperblockSize + p.HashBlockSize - 1) / p.HashBlockSize)
	l.levelStart = make([]uint64, l.Levels)
	l.levelSize = make([]uint64, l.Levels)
	pos := l.start
	for i := l.Levels - 1; i >= 0; i-- {
		shift := uint((i + 1) * perBits)
		var s uint64
		if shift >= 64 {
			s = 1
		} else {
			s = (dataBlocks + (1 << shift) - 1) >> shift
		}
		l.levelStart[i], l.levelSize[i] = pos, s
		pos += s
	}
	return l, nil
}

// HashBlocks is the number of hash blocks of the tree (the superblock's
// not counted).
func (l *Layout) HashBlocks() uint64 {
	n := uint64(0)
	for _, s := range l.levelSize {
		n += s
	}
	return n
}

// HashDeviceSize is the size of the hash device veritysetup format writes:
// the superblock's block and the tree.
func (l *Layout) HashDeviceSize() int64 {
	return int64(l.start+l.HashBlocks()) * int64(l.HashBlockSize)
}

// DataSize is the number of bytes the tree covers.
func (l *Layout) DataSize() int64 { return int64(l.DataBlocks) * int64(l.DataBlockSize) }

// offset is the hash device offset of block index of level i.
func (l *Layout) offset(i int, index uint64) int64 {
	return int64(l.levelStart[i]+index) * int64(l.HashBlockSize)
}

// Hasher computes a tree's hash blocks and root hash from the data,
// streamed once through Write: one pending hash block per level.
type Hasher struct {
	l       *Layout
	block   func(level int, index uint64, off int64, b []byte) error
	data    []byte // the pending data block
	n       int
	written uint64 // data blocks hashed
	pend    [][]byte
	filled  []int
	index   []uint64 // next block index per level
	root    []byte
	err     error
	// workers hash a large write's data blocks in parallel (GOMAXPROCS):
	// an image is one file of a run, which one pipeline worker reads.
	workers int
	sums    [][HashSize]byte
	d       hash.Hash
}

// NewHasher returns a Hasher over the data of layout l. block, if not nil,
// is called with every finished hash block (zero-padded), its level, its
// index in the level and its offset on the hash device, in the order they
// finish; an error from it stops the Hasher.
func NewHasher(l *Layout, block func(level int, index uint64, off int64, b []byte) error) *Hasher {
	h := &Hasher{l: l, block: block, data: make([]byte, l.DataBlockSize), workers: runtime.GOMAXPROCS(0)}
	h.pend = make([][]byte, l.Levels)
	h.filled = make([]int, l.Levels)
	h.index = make([]uint64, l.Levels)
	for i := range h.pend {
		h.pend[i] = make([]byte, l.HashBlockSize)
	}
	return h
}

// salted returns SHA-256(salt || b).
func (h *Hasher) salted(b []byte) [HashSize]byte {
	if h.d == nil {
		h.d = sha256.New()
	}
	h.d.Reset()
	h.d.Write(h.l.Salt)
	h.d.Write(b)
	var out [HashSize]byte
	h.d.Sum(out[:0])
	return out
}

// Write hashes data. Bytes past the layout's data blocks are an error.
func (h *Hasher) Write(p []byte) (int, error) {
	if h.err != nil {
		return 0, h.err
	}
	n := len(p)
	bs := h.l.DataBlockSize
	for len(p) > 0 {
		if h.written == h.l.DataBlocks {
			h.err = fmt.Errorf("dmverity: more data than the %d blocks of the tree", h.l.DataBlocks)
			return n - len(p), h.err
		}
		var sum [HashSize]byte
		if h.n == 0 && h.workers > 1 && len(p) >= parallelMin && len(p) >= 2*bs {
			// Many whole blocks: hash them on every core, push in order.
			nb := min(uint64(len(p)/bs), h.l.DataBlocks-h.written)
			sums := h.hashBlocks(p[:int(nb)*bs])
			for i := range sums {
				h.written++
				if err := h.push(0, sums[i][:]); err != nil {
					h.err = err
					return n - len(p) + i*bs, err
				}
			}
			p = p[int(nb)*bs:]
			continue
		}
		if h.n == 0 && len(p) >= bs {
			sum = h.salted(p[:bs])
			p = p[bs:]
		} else {
			c := copy(h.data[h.n:], p)
			h.n += c
			p = p[c:]
			if h.n < bs {
				break
			}
			sum = h.salted(h.data)
			h.n = 0
		}
		h.written++
		if err := h.push(0, sum[:]); err != nil {
			h.err = err
			return n - len(p), err
		}
	}
	return n, nil
}

// parallelMin is the smallest write whose data blocks are hashed on
// several cores: below it, starting the goroutines costs more than it
// saves.
const parallelMin = 64 << 10

// hashBlocks returns the salted hashes of the whole data blocks of p,
// computed by h.workers goroutines on contiguous ranges.
func (h *Hasher) hashBlocks(p []byte) [][HashSize]byte {
	bs := h.l.DataBlockSize
	nb := len(p) / bs
	if cap(h.sums) < nb {
		h.sums = make([][HashSize]byte, nb)
	}
	sums := h.sums[:nb]
	w := min(h.workers, nb)
	var wg sync.WaitGroup
	for k := range w {
		lo, hi := k*nb/w, (k+1)*nb/w
		wg.Go(func() {
			d := sha256.New()
			for i := lo; i < hi; i++ {
				d.Reset()
				d.Write(h.l.Salt)
				d.Write(p[i*bs : (i+1)*bs])
				d.Sum(sums[i][:0])
			}
		})
	}
	wg.Wait()
	return sums
}

// push adds a hash to level i (the root past the top level), finishing
// the level's block when it is full.
func (h *Hasher) push(i int, sum []byte) error {
	for {
		if i == h.l.Levels {
			h.root = append([]byte(nil), sum...)
			return nil
		}
		copy(h.pend[i][h.filled[i]:], sum)
		h.filled[i] += HashSize
		if h.filled[i]+HashSize <= h.l.HashBlockSize {
			return nil
		}
		s, err := h.finish(i)
		if err != nil {
			return err
		}
		sum = s[:]
		i++
	}
}

// finish hands level i's pending block (zero-padded) to the callback and
// returns its salted hash.
func (h *Hasher) finish(i int) ([HashSize]byte, error) {
	b := h.pend[i]
	clear(b[h.filled[i]:])
	if h.block != nil {
		if err := h.block(i, h.index[i], h.l.offset(i, h.index[i]), b); err != nil {
			return [HashSize]byte{}, err
		}
	}
	h.index[i]++
	h.filled[i] = 0
	return h.salted(b), nil
}

// Sum finishes the tree after the last data block and returns the root
// hash. It fails if fewer or more bytes than the layout's data were
// written.
func (h *Hasher) Sum() ([]byte, error) {
	if h.err != nil {
		return nil, h.err
	}
	if h.n != 0 || h.written != h.l.DataBlocks {
		return nil, fmt.Errorf("dmverity: %d bytes of data written, the tree covers %d", int64(h.written)*int64(h.l.DataBlockSize)+int64(h.n), h.l.DataSize())
	}
	for i := 0; i < h.l.Levels; i++ {
		if h.filled[i] == 0 {
			continue
		}
		s, err := h.finish(i)
		if err != nil {
			h.err = err
			return nil, err
		}
		if err := h.push(i+1, s[:]); err != nil {
			return nil, err
		}
	}
	if h.root == nil {
		return nil, errors.New("dmverity: internal error: no root hash")
	}
	return bytes.Clone(h.root), nil
}

// RootHash computes the root hash of the size bytes of data r with the
// parameters p. size must be a multiple of the data block size: bytes past
// the last block would not be covered.
func RootHash(r io.Reader, size int64, p Params) ([]byte, error) {
	l, err := layoutFor(p, size)
	if err != nil {
		return nil, err
	}
	h := NewHasher(l, nil)
	if _, err := io.CopyBuffer(h, io.LimitReader(r, size), make([]byte, 256<<10)); err != nil {
		return nil, err
	}
	return h.Sum()
}

// layoutFor is the layout of a data device of size bytes.
func layoutFor(p Params, size int64) (*Layout, error) {
	if err := p.normalize(); err != nil {
		return nil, err
	}
	if size <= 0 || size%int64(p.DataBlockSize) != 0 {
		return nil, fmt.Errorf("%w: the data is %d bytes, not a positive multiple of the %d-byte data block (bytes past the last block would not be covered)", ErrParams, size, p.DataBlockSize)
	}
	return NewLayout(p, uint64(size/int64(p.DataBlockSize)))
}

// Format computes the tree of the size bytes of data r and writes the hash
// device to w, as `veritysetup format DATA HASH` does: the superblock
// (with uuid), then the levels, top first. It returns the superblock and
// the root hash.
func Format(r io.Reader, size int64, p Params, uuid [16]byte, w io.WriterAt) (*Superblock, []byte, error) {
	l, err := layoutFor(p, size)
	if err != nil {
		return nil, nil, err
	}
	sb := &Superblock{Layout: l, UUID: uuid}
	sbBytes := sb.Marshal()
	blk := make([]byte, int(l.start)*l.HashBlockSize)
	copy(blk, sbBytes)
	if _, err := w.WriteAt(blk, 0); err != nil {
		return nil, nil, fmt.Errorf("dmverity: writing the superblock: %w", err)
	}
	h := NewHasher(l, func(_ int, _ uint64, off int64, b []byte) error {
		_, err := w.WriteAt(b, off)
		return err
	})
	if _, err := io.CopyBuffer(h, io.LimitReader(r, size), make([]byte, 256<<10)); err != nil {
		return nil, nil, err
	}
	root, err := h.Sum()
	if err != nil {
		return nil, nil, err
	}
	return sb, root, nil
}

// ErrMismatch is wrapped when data, a hash device and a root hash do not
// agree.
var ErrMismatch = signing.ErrDigestMismatch

// VerifyHasher returns a Hasher that checks every hash block it computes
// from the data against the hash device hash (whose superblock sb
// describes the tree) as it goes; its Sum fails with an error wrapping
// ErrMismatch at the first block that differs, naming the level, the
// block and its offset. Compare Sum's root hash with the one expected.
func VerifyHasher(sb *Superblock, hash io.ReaderAt) *Hasher {
	stored := make([]byte, sb.HashBlockSize)
	return NewHasher(sb.Layout, func(level int, index uint64, off int64, b []byte) error {
		if _, err := hash.ReadAt(stored, off); err != nil {
			if errors.Is(err, io.EOF) {
				return malformed(off, "the hash device ends inside level %d (block %d)", level, index)
			}
			return fmt.Errorf("dmverity: reading the hash device at %#x: %w", off, err)
		}
		if !bytes.Equal(stored, b) {
			return signing.Errorf(ErrMismatch, "dmverity: the data does not match the hash device: level %d block %d (offset %#x) differs", level, index, off)
		}
		return nil
	})
}

// Verify checks the size bytes of data r against the hash device hash and
// the expected root hash, as `veritysetup verify DATA HASH ROOT` does:
// the superblock is parsed strictly, the data must be exactly its data
// blocks, every hash block of the device must equal the one the data
// makes, and the root hash must be root. It returns the superblock.
// Errors wrap ErrMismatch (signing.ErrDigestMismatch) for a difference,
// or are a *signing.MalformedError for a hash device that cannot be read
// as one.
func Verify(r io.Reader, size int64, hash io.ReaderAt, root []byte) (*Superblock, error) {
	var b [SuperblockSize]byte
	if _, err := hash.ReadAt(b[:], 0); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, malformed(0, "the hash device is shorter than a superblock")
		}
		return nil, fmt.Errorf("dmverity: reading the superblock: %w", err)
	}
	sb, err := ParseSuperblock(b[:])
	if err != nil {
		return nil, err
	}
	if size != sb.DataSize() {
		return nil, signing.Errorf(ErrMismatch, "dmverity: the data is %d bytes, the superblock's tree covers %d (%d blocks of %d)", size, sb.DataSize(), sb.DataBlocks, sb.DataBlockSize)
	}
	h := VerifyHasher(sb, hash)
	if _, err := io.CopyBuffer(h, io.LimitReader(r, size), make([]byte, 256<<10)); err != nil {
		return nil, err
	}
	got, err := h.Sum()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(got, root) {
		return nil, signing.Errorf(ErrMismatch, "dmverity: root hash %x, want %x", got, root)
	}
	return sb, nil
}

// ParseRootHash reads a root hash as IMAGE.roothash and veritysetup print
// it: hex, one trailing newline allowed.
func ParseRootHash(b []byte) ([]byte, error) {
	s := bytes.TrimSuffix(b, []byte("\n"))
	if len(s) != 2*HashSize {
		return nil, malformed(0, "a SHA-256 root hash is %d hex digits, this is %d bytes", 2*HashSize, len(s))
	}
	d := make([]byte, HashSize)
	if _, err := hex.Decode(d, s); err != nil {
		return nil, malformed(0, "root hash is not hex: %v", err)
	}
	return d, nil
}
