// Package image is csv's handler of filesystem images judged by dm-verity:
// squashfs (magic "hsqs", major version 4), EROFS (magic 0xE0F5E1E2 at
// 1024, block size 512 B to 64 KiB) and ext2/3/4 (magic 0xEF53 at 1080,
// block size 1 to 64 KiB, revision 0 or 1), recognised by content.
//
// A host that mounts such an image through dm-verity trusts it by its root
// hash (IPE's dmverity_roothash) or by the root hash's signature (IPE's
// dmverity_signature, the kernel's root_hash_sig_key_desc). The root hash
// depends on the tree's parameters (the salt above all), which only the
// hash device holds, so csv uses systemd's sidecar conventions beside the
// image:
//
//   - IMAGE.verity: the hash device (veritysetup format IMAGE
//     IMAGE.verity), with its superblock. csv checks the image against it
//     in the one read (every hash block the image's data makes must equal
//     the device's), and the root hash it ends with is the image's
//     dmverity_sha256 digest.
//   - IMAGE.roothash: the root hash in hex; it must be the tree's.
//   - IMAGE.roothash.p7s: the root hash's detached PKCS#7 signature,
//     verified with the run's certificates and judged by signer rules as a
//     signature of Format "dmverity".
//
// An image without IMAGE.verity has no dm-verity digest: it is judged by
// its SHA256 alone. A root hash or signature without the hash device, a
// superblock that does not parse or does not describe exactly the image's
// bytes, an image that differs from its hash device and a root hash file
// that differs from the tree are findings (the image is malformed), never
// ignored. Container members have no sidecars.
//
// # Security
//
// The image and its sidecars are untrusted. The superblock is parsed
// strictly (signing/dmverity), the hash device read one hash block at a
// time, IMAGE.roothash capped at 1 KiB and the signature at
// limits.MaxDetachedSignature before they are parsed.
package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/dmverity"
)

// Sidecar suffixes (systemd's conventions).
const (
	SuffixVerity    = ".verity"
	SuffixRootHash  = ".roothash"
	SuffixSignature = ".roothash.p7s"
)

// maxRootHashFile caps IMAGE.roothash: 64 hex digits and a newline.
const maxRootHashFile = 1 << 10

// Handler handles filesystem images.
type Handler struct{}

// Format implements format.Handler.
func (Handler) Format() cipolicy.Format { return cipolicy.FormatImage }

// Filesystem kinds.
const (
	Squashfs = "squashfs"
	EROFS    = "erofs"
	Ext4     = "ext4"
)

// Kind returns the filesystem a file's first bytes start, or "".
func Kind(head []byte) string {
	le16 := func(off int) uint16 { return binary.LittleEndian.Uint16(head[off:]) }
	switch {
	case len(head) >= 96 && string(head[:4]) == "hsqs" && le16(28) == 4:
		return Squashfs
	case len(head) >= 1024+16 && binary.LittleEndian.Uint32(head[1024:]) == 0xE0F5E1E2 && head[1024+12] >= 9 && head[1024+12] <= 16:
		return EROFS
	case len(head) >= 1024+80 && le16(1024+56) == 0xEF53 && binary.LittleEndian.Uint32(head[1024+24:]) <= 6 && binary.LittleEndian.Uint32(head[1024+76:]) <= 1:
		return Ext4
	}
	return ""
}

// Sniff implements format.Handler: by content.
func (Handler) Sniff(f *format.File) bool { return Kind(f.Head) != "" }

// Info is what inspection learns of an image.
type Info struct {
	Filesystem string `json:"filesystem"`
	// Verity describes the hash device IMAGE.verity, when there is one
	// and it was read (the policy asked for the root hash or signatures).
	Verity *Verity `json:"verity,omitempty"`
	// RootHashFile and SignatureFile say IMAGE.roothash and
	// IMAGE.roothash.p7s were found (and checked).
	RootHashFile  bool `json:"roothash_file,omitempty"`
	SignatureFile bool `json:"signature_file,omitempty"`
}

// Verity is an image's hash device, as its superblock says.
type Verity struct {
	HashDevice    string `json:"hash_device"`
	UUID          string `json:"uuid"`
	DataBlockSize int    `json:"data_block_size"`
	HashBlockSize int    `json:"hash_block_size"`
	DataBlocks    uint64 `json:"data_blocks"`
	Salt          string `json:"salt"`
	// RootHash is the root hash of the tree the image's data makes, once
	// checked against the hash device.
	RootHash string `json:"root_hash,omitempty"`
}

// Describe implements format.Info.
func (i *Info) Describe() string {
	if i.Verity != nil {
		return fmt.Sprintf("%s image (dm-verity hash device %s)", i.Filesystem, i.Verity.HashDevice)
	}
	return fmt.Sprintf("%s image (no dm-verity hash device beside it)", i.Filesystem)
}

// WriteText implements format.Info.
func (i *Info) WriteText(_ io.Writer, row func(key, value string)) {
	if i.Verity == nil {
		row("dm-verity", "no hash device read")
		return
	}
	v := i.Verity
	row("hash device", v.HashDevice)
	row("verity", fmt.Sprintf("uuid %s, data blocks %d x %d, hash blocks %d, salt %s", v.UUID, v.DataBlocks, v.DataBlockSize, v.HashBlockSize, v.Salt))
	if v.RootHash != "" {
		row("root hash", v.RootHash)
	}
}

func malformed(reason string, err error) error {
	return &format.MalformedError{Format: cipolicy.FormatImage, Offset: -1, Reason: reason, Err: err}
}

// readSidecar reads a small sidecar whole: nil, nil when there is none.
func readSidecar(f *format.File, suffix string, max int64) ([]byte, error) {
	s, err := f.Sidecar(suffix)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s%s: %w", f.Name, suffix, err)
	}
	defer s.Close()
	b, err := io.ReadAll(io.LimitReader(s, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s%s: %w", f.Name, suffix, err)
	}
	if int64(len(b)) > max {
		return nil, malformed(fmt.Sprintf("%s%s is over the limit of %d bytes", f.Name, suffix, max), signing.ErrLimit)
	}
	return b, nil
}

// tolerant feeds a Hasher and keeps its first error, so that the file's
// read goes on: an image that differs from its hash device is a finding
// the finish reports, not a failure to read.
type tolerant struct {
	h   *dmverity.Hasher
	err error
}

func (t *tolerant) Write(p []byte) (int, error) {
	if t.err == nil {
		_, t.err = t.h.Write(p)
	}
	return len(p), nil
}

// sum is a hash.Hash whose Sum is a digest computed elsewhere (the root
// hash, once the read is done); it is never written to.
type sum struct{ d *[]byte }

func (s sum) Write(p []byte) (int, error) { return len(p), nil }
func (s sum) Sum(b []byte) []byte {
	if *s.d == nil {
		return nil
	}
	return append(b, *s.d...)
}
func (s sum) Reset()         {}
func (s sum) Size() int      { return sha256.Size }
func (s sum) BlockSize() int { return sha256.BlockSize }

// Inspect implements format.Handler. When the needs ask for the dm-verity
// root hash or for signatures, it reads the image's sidecars (see the
// package documentation), adds to the read the check of the image
// against its hash device, and returns the finish that checks the root
// hash file and verifies the signature.
func (Handler) Inspect(f *format.File, need cipolicy.Needs, opts *format.InspectOptions, p *format.Pass, facts *format.Facts) (func() error, error) {
	info := &Info{Filesystem: Kind(f.Head)}
	facts.Info = info
	if need.Signatures {
		facts.Signatures = []*signing.Signature{}
	}
	if !need.Digests.Has(cipolicy.DMVeritySHA256) && !need.Signatures || f.Sidecar == nil {
		return nil, nil
	}
	rootFile, err := readSidecar(f, SuffixRootHash, maxRootHashFile)
	if err != nil {
		return nil, err
	}
	sigFile, err := readSidecar(f, SuffixSignature, limits.MaxDetachedSignature)
	if err != nil {
		return nil, err
	}
	info.RootHashFile, info.SignatureFile = rootFile != nil, sigFile != nil
	facts.Signed = sigFile != nil
	var want []byte
	if rootFile != nil {
		if want, err = dmverity.ParseRootHash(rootFile); err != nil {
			return nil, malformed(fmt.Sprintf("%s%s: %v", f.Name, SuffixRootHash, err), err)
		}
	}
	var sig *dmverity.Signature
	if sigFile != nil {
		if sig, err = dmverity.ParseSignature(sigFile); err != nil {
			return nil, malformed(fmt.Sprintf("%s%s: %v", f.Name, SuffixSignature, err), err)
		}
	}
	dev, err := f.Sidecar(SuffixVerity)
	if errors.Is(err, fs.ErrNotExist) && opts.Verity != nil {
		// No hash device: the tree is computed with the run's
		// parameters, as veritysetup format makes it with them.
		l, err := layoutFor(*opts.Verity, f.Size)
		if err != nil {
			return nil, malformed(fmt.Sprintf("the image cannot be hashed with the dm-verity parameters given: %v", err), err)
		}
		bs := opts.Verity.DataBlockSize
		if bs == 0 {
			bs = 4096
		}
		hbs := opts.Verity.HashBlockSize
		if hbs == 0 {
			hbs = 4096
		}
		info.Verity = &Verity{DataBlockSize: bs, HashBlockSize: hbs, DataBlocks: l.DataBlocks, Salt: hex.EncodeToString(opts.Verity.Salt)}
		return rootHashOf(f, &tolerant{h: dmverity.NewHasher(l, nil)}, nil, p, info, want, sig, opts, facts), nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		if rootFile != nil || sigFile != nil {
			name := f.Name + SuffixRootHash
			if rootFile == nil {
				name = f.Name + SuffixSignature
			}
			return nil, malformed(fmt.Sprintf("%s without the hash device %s%s: csv cannot check the root hash", name, f.Name, SuffixVerity), nil)
		}
		return nil, nil // judged by its SHA256 alone
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s%s: %w", f.Name, SuffixVerity, err)
	}
	sb, err := readSuperblock(dev)
	if err != nil {
		dev.Close()
		var me *signing.MalformedError
		if errors.As(err, &me) {
			return nil, malformed(fmt.Sprintf("%s%s: %s", f.Name, SuffixVerity, me.Error()), err)
		}
		return nil, fmt.Errorf("reading %s%s: %w", f.Name, SuffixVerity, err)
	}
	info.Verity = &Verity{HashDevice: f.Name + SuffixVerity, UUID: sb.UUIDString(), DataBlockSize: sb.DataBlockSize,
		HashBlockSize: sb.HashBlockSize, DataBlocks: sb.DataBlocks, Salt: hex.EncodeToString(sb.Salt)}
	if sb.DataSize() != f.Size {
		dev.Close()
		return nil, malformed(fmt.Sprintf("%s%s describes %d bytes of data (%d blocks of %d), the image is %d bytes", f.Name, SuffixVerity, sb.DataSize(), sb.DataBlocks, sb.DataBlockSize, f.Size), nil)
	}
	// The hash device stays open for the read; it is closed when the
	// read is done (or, if the read fails, by its finalizer).
	return rootHashOf(f, &tolerant{h: dmverity.VerifyHasher(sb, dev)}, dev, p, info, want, sig, opts, facts), nil
}

// layoutFor is the tree of an image of size bytes hashed with p: its size
// must be a whole number of data blocks.
func layoutFor(p dmverity.Params, size int64) (*dmverity.Layout, error) {
	bs := int64(p.DataBlockSize)
	if bs == 0 {
		bs = 4096
	}
	if size <= 0 || size%bs != 0 {
		return nil, fmt.Errorf("the image is %d bytes, not a whole number of %d-byte data blocks", size, bs)
	}
	return dmverity.NewLayout(p, uint64(size/bs))
}

// rootHashOf adds the tree t computes (over the image, checked against its
// hash device dev when there is one) to the read, as the image's
// dmverity_sha256, and returns the check of the root hash file and the
// signature against it.
func rootHashOf(f *format.File, t *tolerant, dev *os.File, p *format.Pass, info *Info, want []byte, sig *dmverity.Signature, opts *format.InspectOptions, facts *format.Facts) func() error {
	var root []byte
	p.Write(t)
	p.OnDone(func() error {
		if dev != nil {
			defer dev.Close()
		}
		if t.err == nil {
			root, t.err = t.h.Sum()
		}
		if t.err != nil {
			root = nil
		}
		return nil
	})
	p.Digest(cipolicy.DMVeritySHA256, sum{&root})
	return func() error {
		if t.err != nil {
			var me *signing.MalformedError
			if errors.Is(t.err, dmverity.ErrMismatch) || errors.As(t.err, &me) {
				return malformed(fmt.Sprintf("the image does not match its hash device %s%s: %v", f.Name, SuffixVerity, t.err), t.err)
			}
			return t.err
		}
		info.Verity.RootHash = hex.EncodeToString(root)
		if want != nil && !bytes.Equal(want, root) {
			return malformed(fmt.Sprintf("%s%s is %x, the image's tree (%s%s) gives %x", f.Name, SuffixRootHash, want, f.Name, SuffixVerity, root),
				signing.Errorf(dmverity.ErrMismatch, "dmverity: root hash mismatch"))
		}
		if sig != nil {
			facts.Signatures = append(facts.Signatures, sig.VerifyCached(root, opts.Certificates, opts.Cache))
		}
		return nil
	}
}

func readSuperblock(dev *os.File) (*dmverity.Superblock, error) {
	b := make([]byte, dmverity.SuperblockSize)
	if n, err := dev.ReadAt(b, 0); n < len(b) {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, &signing.MalformedError{Format: dmverity.MalformedFormat, Offset: int64(n), Reason: "the hash device is shorter than a superblock"}
		}
		return nil, err
	}
	return dmverity.ParseSuperblock(b)
}

// WarningNotSigned is csv sign's warning for an image, which it copies
// unchanged: a dm-verity image is signed by its root hash's signature
// (IMAGE.roothash.p7s), beside it.
const WarningNotSigned = "csv does not sign filesystem images: copied unchanged (sign the dm-verity root hash: IMAGE.roothash.p7s)"

// Sign implements format.Handler: it copies the image unchanged, with a
// warning. With opts.Expect, the bytes read must have the SHA256
// validation saw.
func (Handler) Sign(ctx context.Context, f *format.File, out format.Output, opts *format.SignOptions) (*format.Signed, error) {
	h := sha256.New()
	if err := f.Stream(ctx, out, h); err != nil {
		return nil, err
	}
	s := h.Sum(nil)
	if opts.Expect != nil {
		if want := opts.Expect.Get(cipolicy.SHA256); want != nil && !bytes.Equal(want, s) {
			return nil, fmt.Errorf("%w: SHA256 %x when validated, %x now", format.ErrChanged, want, s)
		}
	}
	return &format.Signed{SHA256: s, Warnings: []string{WarningNotSigned}}, nil
}
