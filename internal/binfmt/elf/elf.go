// Package elf checks that a file which starts with the ELF magic is a
// complete, well-formed ELF file: a valid identification and header, and
// program and section header tables, segments and sections that lie within
// the file. A truncated build artifact fails here with the offset where it
// should have continued.
//
// The standard library's debug/elf parses far more than the validator needs
// and may panic on hostile input (see its Security notes); this package reads
// only the header tables, through an io.ReaderAt and a fixed buffer.
//
// # Security
//
// Input is untrusted. Counts are capped by internal/limits, every offset is
// checked against the file size with overflow-safe arithmetic, and errors are
// *binfmt.MalformedError values naming the offset.
package elf

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/codesignval/csv/internal/binfmt"
	"github.com/codesignval/csv/internal/limits"
)

// Identification values.
const (
	Class32  = 1
	Class64  = 2
	Data2LSB = 1
	Data2MSB = 2
)

const (
	ptLoad    = 1
	shtNobits = 8
	shnXindex = 0xffff
)

// File describes an ELF file's header.
type File struct {
	Size      int64
	Class     byte // Class32 or Class64
	Data      byte // Data2LSB or Data2MSB
	OSABI     byte
	Type      uint16
	Machine   uint16
	Entry     uint64
	PhOff     uint64
	ShOff     uint64
	PhEntSize uint16
	PhNum     int
	ShEntSize uint16
	ShNum     int
	ShStrNdx  int
	byteOrder binary.ByteOrder
}

// Is64 reports whether the file is ELFCLASS64.
func (f *File) Is64() bool { return f.Class == Class64 }

// ByteOrder returns the file's byte order.
func (f *File) ByteOrder() binary.ByteOrder { return f.byteOrder }

// Parse reads and checks the ELF file in r, which is size bytes long.
func Parse(r io.ReaderAt, size int64) (*File, error) {
	f, phEnt, shEnt, err := parseHeader(r, size)
	if err != nil {
		return nil, err
	}
	if err := f.checkTables(r, phEnt, shEnt); err != nil {
		return nil, err
	}
	return f, nil
}

// ParseHeader reads and checks the ELF header alone (its first 64 bytes at
// most), as Parse does, without reading the tables it points to.
func ParseHeader(r io.ReaderAt, size int64) (*File, error) {
	f, _, _, err := parseHeader(r, size)
	return f, err
}

// Tables returns where the program and section header tables lie, by the
// header (offset and size in bytes each; a size of 0 for a table the file
// has none of): Parse reads them. A section count kept in section 0
// (extended numbering) is not known from the header: the section header
// table is then given as reaching to the end of the file.
func (f *File) Tables() (phOff, phSize, shOff, shSize int64) {
	phEnt, shEnt := 32, 40
	if f.Is64() {
		phEnt, shEnt = 56, 64
	}
	if f.PhNum > 0 && f.PhNum != 0xffff {
		phOff, phSize = int64(min(f.PhOff, uint64(f.Size))), int64(f.PhNum)*int64(phEnt)
	}
	if f.ShOff != 0 {
		shOff = int64(min(f.ShOff, uint64(f.Size)))
		shSize = int64(f.ShNum) * int64(shEnt)
		if f.ShNum == 0 || f.PhNum == 0xffff || f.ShStrNdx == shnXindex {
			shSize = f.Size - shOff
		}
	}
	if f.PhNum == 0xffff {
		// The count is in section 0: every program header may follow.
		phOff, phSize = int64(min(f.PhOff, uint64(f.Size))), f.Size-int64(min(f.PhOff, uint64(f.Size)))
	}
	return phOff, phSize, shOff, shSize
}

func parseHeader(r io.ReaderAt, size int64) (*File, int, int, error) {
	var h [64]byte
	if err := binfmt.ReadFull(r, size, binfmt.ELF, 0, h[:16], "ELF identification"); err != nil {
		return nil, 0, 0, err
	}
	if string(h[:4]) != "\x7fELF" {
		return nil, 0, 0, binfmt.Errorf(binfmt.ELF, 0, "no ELF magic")
	}
	f := &File{Size: size, Class: h[4], Data: h[5], OSABI: h[7]}
	var hdrSize, phEnt, shEnt int
	switch f.Class {
	case Class32:
		hdrSize, phEnt, shEnt = 52, 32, 40
	case Class64:
		hdrSize, phEnt, shEnt = 64, 56, 64
	default:
		return nil, 0, 0, binfmt.Errorf(binfmt.ELF, 4, "invalid EI_CLASS %d", f.Class)
	}
	switch f.Data {
	case Data2LSB:
		f.byteOrder = binary.LittleEndian
	case Data2MSB:
		f.byteOrder = binary.BigEndian
	default:
		return nil, 0, 0, binfmt.Errorf(binfmt.ELF, 5, "invalid EI_DATA %d", f.Data)
	}
	if h[6] != 1 {
		return nil, 0, 0, binfmt.Errorf(binfmt.ELF, 6, "invalid EI_VERSION %d", h[6])
	}
	if err := binfmt.ReadFull(r, size, binfmt.ELF, 0, h[:hdrSize], "ELF header"); err != nil {
		return nil, 0, 0, err
	}
	bo := f.byteOrder
	f.Type = bo.Uint16(h[16:])
	f.Machine = bo.Uint16(h[18:])
	if v := bo.Uint32(h[20:]); v != 1 {
		return nil, 0, 0, binfmt.Errorf(binfmt.ELF, 20, "invalid e_version %d", v)
	}
	var ehsize uint16
	if f.Is64() {
		f.Entry = bo.Uint64(h[24:])
		f.PhOff = bo.Uint64(h[32:])
		f.ShOff = bo.Uint64(h[40:])
		ehsize = bo.Uint16(h[52:])
		f.PhEntSize = bo.Uint16(h[54:])
		f.PhNum = int(bo.Uint16(h[56:]))
		f.ShEntSize = bo.Uint16(h[58:])
		f.ShNum = int(bo.Uint16(h[60:]))
		f.ShStrNdx = int(bo.Uint16(h[62:]))
	} else {
		f.Entry = uint64(bo.Uint32(h[24:]))
		f.PhOff = uint64(bo.Uint32(h[28:]))
		f.ShOff = uint64(bo.Uint32(h[32:]))
		ehsize = bo.Uint16(h[40:])
		f.PhEntSize = bo.Uint16(h[42:])
		f.PhNum = int(bo.Uint16(h[44:]))
		f.ShEntSize = bo.Uint16(h[46:])
		f.ShNum = int(bo.Uint16(h[48:]))
		f.ShStrNdx = int(bo.Uint16(h[50:]))
	}
	if int(ehsize) < hdrSize {
		return nil, 0, 0, binfmt.Errorf(binfmt.ELF, 0, "e_ehsize %d is smaller than the ELF header (%d)", ehsize, hdrSize)
	}
	if f.PhNum > 0 && int(f.PhEntSize) != phEnt {
		return nil, 0, 0, binfmt.Errorf(binfmt.ELF, 0, "e_phentsize %d, want %d", f.PhEntSize, phEnt)
	}
	if f.ShOff != 0 && int(f.ShEntSize) != shEnt {
		return nil, 0, 0, binfmt.Errorf(binfmt.ELF, 0, "e_shentsize %d, want %d", f.ShEntSize, shEnt)
	}
	// PN_XNUM: the real program header count is in section 0's sh_info.
	if f.PhNum == 0xffff && f.ShOff == 0 {
		return nil, 0, 0, binfmt.Errorf(binfmt.ELF, 0, "e_phnum is PN_XNUM but there is no section header table")
	}
	return f, phEnt, shEnt, nil
}

// table checks that count entries of entSize bytes at off lie within the
// file and returns the table's size.
func (f *File) table(what string, off uint64, count, entSize int) (int64, error) {
	if off > uint64(f.Size) {
		return 0, binfmt.Errorf(binfmt.ELF, -1, "%s offset %#x is past the end of the file (size %#x): %v", what, off, f.Size, binfmt.ErrTruncated)
	}
	n := int64(count) * int64(entSize)
	if n > f.Size-int64(off) {
		return 0, binfmt.Errorf(binfmt.ELF, int64(off), "%s (%d entries) extends past the end of the file (size %#x): %v", what, count, f.Size, binfmt.ErrTruncated)
	}
	return n, nil
}

func (f *File) checkTables(r io.ReaderAt, phEnt, shEnt int) error {
	bo := f.byteOrder
	var buf [64]byte
	// Section header table first: a PN_XNUM or SHN_UNDEF-count file keeps
	// the real counts in section 0.
	if f.ShOff != 0 {
		if _, err := f.table("section header table", f.ShOff, 1, shEnt); err != nil {
			return err
		}
		if f.ShNum == 0 || f.PhNum == 0xffff || f.ShStrNdx == shnXindex {
			if err := binfmt.ReadFull(r, f.Size, binfmt.ELF, int64(f.ShOff), buf[:shEnt], "section header 0"); err != nil {
				return err
			}
			var size0 uint64
			var info0 uint32
			if f.Is64() {
				size0, info0 = bo.Uint64(buf[32:]), bo.Uint32(buf[44:])
			} else {
				size0, info0 = uint64(bo.Uint32(buf[20:])), bo.Uint32(buf[28:])
			}
			if f.ShNum == 0 {
				if size0 > limits.MaxELFSections {
					return binfmt.Errorf(binfmt.ELF, int64(f.ShOff), "extended section count %d exceeds the limit of %d", size0, limits.MaxELFSections)
				}
				f.ShNum = int(size0)
			}
			if f.PhNum == 0xffff {
				f.PhNum = int(info0)
			}
		}
		if f.ShNum > limits.MaxELFSections {
			return binfmt.Errorf(binfmt.ELF, 0, "%d sections exceed the limit of %d", f.ShNum, limits.MaxELFSections)
		}
		if _, err := f.table("section header table", f.ShOff, f.ShNum, shEnt); err != nil {
			return err
		}
		if f.ShNum > 0 && f.ShStrNdx != shnXindex && f.ShStrNdx >= f.ShNum {
			return binfmt.Errorf(binfmt.ELF, 0, "e_shstrndx %d is not a section (there are %d)", f.ShStrNdx, f.ShNum)
		}
	}
	if f.PhNum > limits.MaxELFProgramHeaders {
		return binfmt.Errorf(binfmt.ELF, 0, "%d program headers exceed the limit of %d", f.PhNum, limits.MaxELFProgramHeaders)
	}
	if f.PhNum > 0 {
		if _, err := f.table("program header table", f.PhOff, f.PhNum, phEnt); err != nil {
			return err
		}
	}

	// Every loadable segment and every section with file contents must lie
	// within the file: a loader would refuse a file cut short.
	err := f.forEach(r, "program header", f.PhOff, f.PhNum, phEnt, func(i int, off int64, e []byte) error {
		var typ uint32
		var poff, pfilesz uint64
		if f.Is64() {
			typ, poff, pfilesz = bo.Uint32(e[0:]), bo.Uint64(e[8:]), bo.Uint64(e[32:])
		} else {
			typ, poff, pfilesz = bo.Uint32(e[0:]), uint64(bo.Uint32(e[4:])), uint64(bo.Uint32(e[16:]))
		}
		if typ != ptLoad || pfilesz == 0 {
			return nil
		}
		if poff > uint64(f.Size) || pfilesz > uint64(f.Size)-poff {
			return binfmt.Errorf(binfmt.ELF, off, "program header %d: loadable segment [%#x, %#x) extends past the end of the file (size %#x): %v",
				i, poff, poff+pfilesz, f.Size, binfmt.ErrTruncated)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return f.forEach(r, "section header", f.ShOff, f.ShNum, shEnt, func(i int, off int64, e []byte) error {
		if i == 0 {
			return nil // the null section (or the extended counts)
		}
		var typ uint32
		var soff, ssize uint64
		if f.Is64() {
			typ, soff, ssize = bo.Uint32(e[4:]), bo.Uint64(e[24:]), bo.Uint64(e[32:])
		} else {
			typ, soff, ssize = bo.Uint32(e[4:]), uint64(bo.Uint32(e[16:])), uint64(bo.Uint32(e[20:]))
		}
		if typ == shtNobits || ssize == 0 {
			return nil
		}
		if soff > uint64(f.Size) || ssize > uint64(f.Size)-soff {
			return binfmt.Errorf(binfmt.ELF, off, "section header %d: section data [%#x, %#x) extends past the end of the file (size %#x): %v",
				i, soff, soff+ssize, f.Size, binfmt.ErrTruncated)
		}
		return nil
	})
}

// forEach reads count table entries of entSize bytes at off, a few kilobytes
// at a time, and calls fn with each entry's index, file offset and bytes.
func (f *File) forEach(r io.ReaderAt, what string, off uint64, count, entSize int, fn func(int, int64, []byte) error) error {
	var buf [4096]byte
	per := len(buf) / entSize
	for i := 0; i < count; i += per {
		n := min(per, count-i)
		at := int64(off) + int64(i*entSize)
		chunk := buf[:n*entSize]
		if err := binfmt.ReadFull(r, f.Size, binfmt.ELF, at, chunk, fmt.Sprintf("%ss %d-%d", what, i, i+n-1)); err != nil {
			return err
		}
		for j := range n {
			if err := fn(i+j, at+int64(j*entSize), chunk[j*entSize:(j+1)*entSize]); err != nil {
				return err
			}
		}
	}
	return nil
}
