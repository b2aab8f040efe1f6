package rpm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/signing"
)

var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0}

// checkXZBlocks follows the xz payload's structure from its start, as a
// decoder finds it (stream header; each block's header, then its LZMA2
// chunks by their sizes, padding and check; the index; the footer;
// stream padding; the next stream), without decompressing, and refuses a
// block whose LZMA2 dictionary is over maxXZDict before ulikunitz/xz,
// which allocates the dictionary every block header declares (up to
// 4 GiB), decodes any. A structure it cannot follow is malformed: the
// decoder would refuse it too, but possibly only after allocating.
func checkXZBlocks(src io.Reader) error {
	r := bufio.NewReaderSize(src, 64<<10)
	var pos int64
	bad := func(format string, args ...any) error {
		return &signing.MalformedError{Format: "RPM", Offset: -1,
			Reason: fmt.Sprintf("xz payload at offset %#x: ", pos) + fmt.Sprintf(format, args...)}
	}
	read := func(b []byte) error {
		n, err := io.ReadFull(r, b)
		pos += int64(n)
		if err != nil {
			return bad("the stream ends early")
		}
		return nil
	}
	skip := func(n int64) error {
		for n > 0 {
			k := int(min(n, 1<<30))
			d, err := r.Discard(k)
			pos += int64(d)
			if err != nil {
				return bad("the stream ends early")
			}
			n -= int64(k)
		}
		return nil
	}
	readVarint := func() (uint64, error) {
		var v uint64
		for i := 0; i < 9; i++ {
			c, err := r.ReadByte()
			if err != nil {
				return 0, bad("the stream ends early")
			}
			pos++
			v |= uint64(c&0x7f) << (7 * i)
			if c < 0x80 {
				return v, nil
			}
		}
		return 0, bad("a multibyte integer is too long")
	}
	for streams := 0; ; streams++ {
		var hdr [12]byte
		if err := read(hdr[:]); err != nil {
			return err
		}
		if !bytes.Equal(hdr[:6], xzMagic) {
			return bad("no xz stream magic")
		}
		checkSize := int64(xzCheckSize(hdr[7] & 0x0f))
		streamStart := pos - 12
		for {
			var h [1024]byte
			if err := read(h[:1]); err != nil {
				return err
			}
			if h[0] == 0 {
				break // the index
			}
			blockStart := pos - 1
			size := (int(h[0]) + 1) * 4
			if err := read(h[1:size]); err != nil {
				return err
			}
			if err := blockDict(h[:size]); err != nil {
				return err
			}
			if err := lzma2Chunks(r, &pos, bad); err != nil {
				return err
			}
			if err := skip((4-(pos-blockStart)%4)%4 + checkSize); err != nil {
				return err
			}
		}
		n, err := readVarint()
		if err != nil {
			return err
		}
		for range n {
			if _, err := readVarint(); err != nil {
				return err
			}
			if _, err := readVarint(); err != nil {
				return err
			}
		}
		// Index padding, CRC32, then the 12-byte footer.
		if err := skip((4-(pos-streamStart)%4)%4 + 4 + 12); err != nil {
			return err
		}
		// Stream padding, then another stream or the end.
		for {
			b, err := r.Peek(4)
			if errors.Is(err, io.EOF) && len(b) == 0 {
				return nil
			}
			if err != nil || !bytes.Equal(b, []byte{0, 0, 0, 0}) {
				break
			}
			_ = skip(4)
		}
	}
}

// lzma2Chunks skips an LZMA2 chunk sequence up to its end marker.
func lzma2Chunks(r *bufio.Reader, pos *int64, bad func(string, ...any) error) error {
	var h [6]byte
	for {
		c, err := r.ReadByte()
		if err != nil {
			return bad("the stream ends in LZMA2 data")
		}
		*pos++
		var n int64
		switch {
		case c == 0:
			return nil
		case c == 1 || c == 2:
			if _, err := io.ReadFull(r, h[:2]); err != nil {
				return bad("the stream ends in LZMA2 data")
			}
			*pos += 2
			n = int64(binary.BigEndian.Uint16(h[:2])) + 1
		case c >= 0x80:
			k := 4
			if c >= 0xc0 {
				k = 5
			}
			if _, err := io.ReadFull(r, h[:k]); err != nil {
				return bad("the stream ends in LZMA2 data")
			}
			*pos += int64(k)
			n = int64(binary.BigEndian.Uint16(h[2:4])) + 1
		default:
			return bad("LZMA2 control byte %#x", c)
		}
		d, err := r.Discard(int(n))
		*pos += int64(d)
		if err != nil {
			return bad("the stream ends in LZMA2 data")
		}
	}
}

func xzCheckSize(id byte) int {
	switch {
	case id == 0:
		return 0
	case id <= 3:
		return 4
	case id <= 6:
		return 8
	case id <= 9:
		return 16
	case id <= 12:
		return 32
	}
	return 64
}

// blockDict checks the LZMA2 dictionary of the xz block header h.
func blockDict(h []byte) error {
	b := h[2:]
	flags := h[1]
	varint := func() (uint64, bool) {
		var v uint64
		for i := 0; i < 9 && i < len(b); i++ {
			v |= uint64(b[i]&0x7f) << (7 * i)
			if b[i] < 0x80 {
				b = b[i+1:]
				return v, true
			}
		}
		return 0, false
	}
	for _, bit := range []byte{0x40, 0x80} {
		if flags&bit != 0 {
			if _, ok := varint(); !ok {
				return nil
			}
		}
	}
	for range int(flags&3) + 1 {
		id, ok := varint()
		if !ok {
			return nil
		}
		n, ok := varint()
		if !ok || uint64(len(b)) < n {
			return nil
		}
		if id == 0x21 && n == 1 {
			code := b[0]
			dict := uint64(1<<32 - 1)
			if code < 40 {
				dict = uint64(2|code&1) << (code/2 + 11)
			}
			if dict > maxXZDict {
				return &container.LimitError{Cap: "MaxXZDictionary", Value: maxXZDict,
					What: fmt.Sprintf("the xz payload's %d-byte dictionary", dict)}
			}
		}
		b = b[n:]
	}
	return nil
}
