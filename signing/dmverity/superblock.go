package dmverity

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/codesignval/csv/internal/limits"
)

// SuperblockSize is the size of struct verity_sb.
const SuperblockSize = 512

// superblock field offsets (struct verity_sb, cryptsetup
// lib/verity/verity.c; little-endian).
const (
	sbSignature     = 0   // "verity\0\0"
	sbVersion       = 8   // u32, 1
	sbHashType      = 12  // u32, 1 (0: Chrome OS)
	sbUUID          = 16  // [16]
	sbAlgorithm     = 32  // [32], NUL-terminated
	sbDataBlockSize = 64  // u32
	sbHashBlockSize = 68  // u32
	sbDataBlocks    = 72  // u64
	sbSaltSize      = 80  // u16
	sbPad1          = 82  // [6]
	sbSalt          = 88  // [256]
	sbPad2          = 344 // [168]
)

var signature = []byte("verity\x00\x00")

// Superblock is a dm-verity superblock: a tree's parameters on its hash
// device.
type Superblock struct {
	*Layout
	UUID [16]byte
}

// Marshal returns the 512-byte superblock veritysetup format writes.
func (sb *Superblock) Marshal() []byte {
	b := make([]byte, SuperblockSize)
	copy(b[sbSignature:], signature)
	binary.LittleEndian.PutUint32(b[sbVersion:], 1)
	binary.LittleEndian.PutUint32(b[sbHashType:], 1)
	copy(b[sbUUID:], sb.UUID[:])
	copy(b[sbAlgorithm:], "sha256")
	binary.LittleEndian.PutUint32(b[sbDataBlockSize:], uint32(sb.DataBlockSize))
	binary.LittleEndian.PutUint32(b[sbHashBlockSize:], uint32(sb.HashBlockSize))
	binary.LittleEndian.PutUint64(b[sbDataBlocks:], sb.DataBlocks)
	binary.LittleEndian.PutUint16(b[sbSaltSize:], uint16(len(sb.Salt)))
	copy(b[sbSalt:], sb.Salt)
	return b
}

// ParseSuperblock reads a superblock strictly: the signature, format
// version 1, hash type 1 (salt first; Chrome OS's type 0 is refused),
// algorithm "sha256" (others are refused as unsupported), block sizes
// that are powers of two from 512 to limits.MaxVerityBlockSize, at least
// one data block and at most limits.MaxVerityDataSize bytes of data, a
// salt of at most 256 bytes, and zeros in every byte no field uses (the
// padding, the algorithm's and the salt's unused bytes). Errors are
// *signing.MalformedError with the field's offset.
func ParseSuperblock(b []byte) (*Superblock, error) {
	if len(b) < SuperblockSize {
		return nil, malformed(int64(len(b)), "the superblock is %d bytes, want %d", len(b), SuperblockSize)
	}
	b = b[:SuperblockSize]
	if !bytes.Equal(b[sbSignature:sbSignature+8], signature) {
		return nil, malformed(sbSignature, "no verity superblock (signature %q)", b[:8])
	}
	if v := binary.LittleEndian.Uint32(b[sbVersion:]); v != 1 {
		return nil, malformed(sbVersion, "superblock version %d, want 1", v)
	}
	if t := binary.LittleEndian.Uint32(b[sbHashType:]); t != 1 {
		return nil, malformed(sbHashType, "hash type %d is not supported (want 1; 0 is Chrome OS's)", t)
	}
	alg := b[sbAlgorithm : sbAlgorithm+32]
	name, rest, _ := bytes.Cut(alg, []byte{0})
	if string(name) != "sha256" {
		return nil, malformed(sbAlgorithm, "hash algorithm %q is not supported (sha256)", name)
	}
	if !zero(rest) {
		return nil, malformed(sbAlgorithm+int64(len(name)), "bytes after the algorithm name are not zero")
	}
	dbs := binary.LittleEndian.Uint32(b[sbDataBlockSize:])
	hbs := binary.LittleEndian.Uint32(b[sbHashBlockSize:])
	for _, f := range []struct {
		off int64
		v   uint32
	}{{sbDataBlockSize, dbs}, {sbHashBlockSize, hbs}} {
		if f.v < 512 || f.v > limits.MaxVerityBlockSize || f.v&(f.v-1) != 0 {
			return nil, malformed(f.off, "block size %d is not a power of two from 512 to %d", f.v, limits.MaxVerityBlockSize)
		}
	}
	blocks := binary.LittleEndian.Uint64(b[sbDataBlocks:])
	if blocks == 0 {
		return nil, malformed(sbDataBlocks, "no data blocks")
	}
	if blocks > limits.MaxVerityDataSize/uint64(dbs) {
		return nil, malformed(sbDataBlocks, "%d data blocks of %d bytes, over the limit of %d bytes", blocks, dbs, uint64(limits.MaxVerityDataSize))
	}
	saltSize := int(binary.LittleEndian.Uint16(b[sbSaltSize:]))
	if saltSize > limits.MaxVeritySalt {
		return nil, malformed(sbSaltSize, "salt of %d bytes, over the limit of %d", saltSize, limits.MaxVeritySalt)
	}
	if !zero(b[sbPad1:sbSalt]) {
		return nil, malformed(sbPad1, "padding after the salt size is not zero")
	}
	if !zero(b[sbSalt+saltSize : sbPad2]) {
		return nil, malformed(sbSalt+int64(saltSize), "bytes after the %d-byte salt are not zero", saltSize)
	}
	if !zero(b[sbPad2:]) {
		return nil, malformed(sbPad2, "the superblock's padding is not zero")
	}
	p := Params{DataBlockSize: int(dbs), HashBlockSize: int(hbs), Salt: bytes.Clone(b[sbSalt : sbSalt+saltSize])}
	l, err := NewLayout(p, blocks)
	if err != nil {
		return nil, malformed(sbDataBlocks, "%v", err)
	}
	sb := &Superblock{Layout: l}
	copy(sb.UUID[:], b[sbUUID:])
	return sb, nil
}

func zero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// UUIDString formats the UUID as veritysetup prints it.
func (sb *Superblock) UUIDString() string {
	u := sb.UUID
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
