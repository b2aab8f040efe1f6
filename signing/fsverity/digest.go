// Package fsverity computes the fs-verity file digest and reads, verifies
// and makes fs-verity built-in signatures, as Linux (fs/verity) and
// fsverity-utils (`fsverity digest`, `fsverity sign`) define them.
//
// # The file digest
//
// fs-verity hashes a file into a Merkle tree: the file is cut into 4 KiB
// blocks (the last one zero-padded), each block is hashed with SHA-256,
// the hashes are packed 128 to a 4 KiB block (the last block of each level
// zero-padded), and those blocks are hashed in turn until one block is
// left; the hash of that block is the root hash (all zeros for an empty
// file, the hash of the only block for a file of one block). The file
// digest is the SHA-256 of the 256-byte fsverity_descriptor: version 1,
// hash algorithm 1 (SHA-256), log2 of the block size (12), no salt, the
// file size (little-endian) and the root hash, every other byte zero. It is
// what `fsverity digest` prints, what FS_IOC_MEASURE_VERITY returns and
// what IPE's fsverity_digest=sha256:HEX compares. csv computes only this
// configuration (SHA-256, 4 KiB blocks, no salt): it is the one
// `fsverity enable` uses by default and the one IPE policies name.
//
// [Digester] is an io.Writer (and a hash.Hash) that computes it in one
// streaming pass in constant memory: one pending block per tree level
// (at most [MaxLevels] of them), allocated as the tree grows.
//
// # Signatures
//
// A built-in signature (FS_IOC_ENABLE_VERITY's signature, `fsverity sign`)
// is a DER PKCS#7 SignedData, detached, over the fsverity_formatted_digest:
// "FSVerity", the hash algorithm (le16, 1) and digest size (le16, 32), then
// the file digest ([FormattedDigest]). See [ParseSignature], [Sign].
//
// # Security
//
// The digest trusts nothing: it is the same for any byte sequence, and the
// tree's shape follows from the number of bytes written. ParseSignature
// reads untrusted bytes: it refuses more than limits.MaxDetachedSignature
// bytes before parsing and parses with package signing/cms (bounded DER).
// Verify takes the signer from the caller's candidates and the signature's
// own certificates, checks that the signature is over this file's
// formatted digest and says who signed; whether that signer is trusted is
// policy (package cipolicy).
package fsverity

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
)

const (
	// BlockSize is the Merkle tree's block size (and the data block size):
	// 4 KiB, log2 12.
	BlockSize    = 4096
	logBlockSize = 12
	// HashSize is the size of a SHA-256 digest.
	HashSize = sha256.Size
	// hashesPerBlock is the tree's arity.
	hashesPerBlock = BlockSize / HashSize
	// MaxLevels is the deepest tree fs-verity builds (FS_VERITY_MAX_LEVELS):
	// enough for any file size with 4 KiB blocks and SHA-256.
	MaxLevels = 8
	// DescriptorSize is the size of struct fsverity_descriptor.
	DescriptorSize = 256
	// algSHA256 is FS_VERITY_HASH_ALG_SHA256.
	algSHA256 = 1
)

// ErrTooLarge is returned by a Digester's Write past the largest file
// fs-verity can hash (2^63-1 bytes, whose tree would need more than
// MaxLevels levels are refused as well).
var ErrTooLarge = errors.New("fsverity: file too large for an fs-verity tree")

// level is one pending block of a tree level.
type level struct {
	buf    []byte // BlockSize, allocated when the level is first used
	filled int
}

// Digester computes the fs-verity file digest (SHA-256, 4 KiB blocks, no
// salt) of the bytes written to it. Its zero value is not usable: call
// [New]. Sum returns the file digest; [Digester.RootHash] the Merkle tree's
// root hash.
type Digester struct {
	data   [BlockSize]byte // the pending data block
	n      int             // bytes in data
	size   int64           // bytes written
	levels [MaxLevels + 1]level
}

// New returns a Digester. It implements hash.Hash; Size is 32 and
// BlockSize 4096 (writes of whole 4 KiB blocks are hashed without a copy).
func New() *Digester { return &Digester{} }

// Size returns the length of the file digest.
func (d *Digester) Size() int { return HashSize }

// BlockSize returns the tree's block size: writes of multiples of it
// (after whole blocks) are hashed in place.
func (d *Digester) BlockSize() int { return BlockSize }

// Reset forgets every byte written.
func (d *Digester) Reset() {
	d.n, d.size = 0, 0
	for i := range d.levels {
		d.levels[i].filled = 0
	}
}

// Len is the number of bytes written.
func (d *Digester) Len() int64 { return d.size }

// Write hashes p. It fails only past 2^63-1 bytes in all (ErrTooLarge).
func (d *Digester) Write(p []byte) (int, error) {
	if int64(len(p)) > math.MaxInt64-d.size {
		return 0, ErrTooLarge
	}
	n := len(p)
	d.size += int64(n)
	for len(p) > 0 {
		if d.n == 0 && len(p) >= BlockSize {
			sum := sha256.Sum256(p[:BlockSize])
			d.push(0, sum[:])
			p = p[BlockSize:]
			continue
		}
		c := copy(d.data[d.n:], p)
		d.n += c
		p = p[c:]
		if d.n == BlockSize {
			sum := sha256.Sum256(d.data[:])
			d.push(0, sum[:])
			d.n = 0
		}
	}
	return n, nil
}

// push appends a hash to level i, hashing the level's block into the next
// level when it is full. A level fills at most once past the tree's top,
// so with at most 2^52 data blocks (2^63 bytes) it never passes
// MaxLevels: level MaxLevels holds at most one hash, the root.
func (d *Digester) push(i int, h []byte) {
	for {
		l := &d.levels[i]
		if l.buf == nil {
			l.buf = make([]byte, BlockSize)
		}
		copy(l.buf[l.filled:], h)
		l.filled += HashSize
		if l.filled < BlockSize || i == MaxLevels {
			return
		}
		sum := sha256.Sum256(l.buf)
		l.filled = 0
		h = sum[:]
		i++
	}
}

// blocks is the number of data blocks of a file of size bytes.
func blocks(size int64) int64 { return (size + BlockSize - 1) / BlockSize }

// Levels is the number of levels of the Merkle tree of a file of size
// bytes: 0 for an empty file or a file of one block (whose root hash is
// the hash of that block).
func Levels(size int64) int {
	n := 0
	for b := blocks(size); b > 1; b = (b + hashesPerBlock - 1) / hashesPerBlock {
		n++
	}
	return n
}

// RootHash returns the Merkle tree's root hash of the bytes written so far
// (all zeros for none). It does not change the Digester.
func (d *Digester) RootHash() []byte {
	root := make([]byte, HashSize)
	if d.size == 0 {
		return root
	}
	// Finish on a copy of the pending blocks: hash the partial data block,
	// then each partial level, bottom up, into the one above, up to the
	// tree's top (level Levels holds the root).
	top := Levels(d.size)
	var pend [MaxLevels + 1][]byte
	for i := 0; i <= top; i++ {
		pend[i] = append(make([]byte, 0, BlockSize), d.levels[i].buf[:d.levels[i].filled]...)
	}
	if d.n > 0 {
		var blk [BlockSize]byte
		copy(blk[:], d.data[:d.n])
		sum := sha256.Sum256(blk[:])
		pend[0] = append(pend[0], sum[:]...)
	}
	for i := 0; i < top; i++ {
		if len(pend[i]) == 0 {
			continue
		}
		var blk [BlockSize]byte
		copy(blk[:], pend[i])
		sum := sha256.Sum256(blk[:])
		pend[i+1] = append(pend[i+1], sum[:]...)
	}
	copy(root, pend[top])
	return root
}

// Sum appends the fs-verity file digest of the bytes written so far to b.
// It does not change the Digester.
func (d *Digester) Sum(b []byte) []byte {
	desc := Descriptor(d.size, d.RootHash())
	sum := sha256.Sum256(desc)
	return append(b, sum[:]...)
}

// Descriptor returns the fsverity_descriptor of a file of size bytes whose
// Merkle tree's root hash (SHA-256, 4 KiB blocks, no salt) is root, as the
// file digest hashes it (sig_size zero).
func Descriptor(size int64, root []byte) []byte {
	b := make([]byte, DescriptorSize)
	b[0] = 1 // version
	b[1] = algSHA256
	b[2] = logBlockSize
	b[3] = 0 // salt_size
	// b[4:8]: sig_size, zero in the digest
	binary.LittleEndian.PutUint64(b[8:16], uint64(size))
	copy(b[16:16+64], root)
	// salt[32] and __reserved[144] stay zero
	return b
}

// FormattedDigest returns the fsverity_formatted_digest of a SHA-256 file
// digest: what a built-in signature signs and the kernel checks it
// against ("FSVerity", le16 algorithm 1, le16 size 32, the digest).
func FormattedDigest(digest []byte) []byte {
	b := make([]byte, 0, 12+len(digest))
	b = append(b, "FSVerity"...)
	b = binary.LittleEndian.AppendUint16(b, algSHA256)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(digest)))
	return append(b, digest...)
}
