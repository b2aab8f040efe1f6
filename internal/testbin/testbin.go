// Package testbin builds small, valid PE and ELF files from scratch for tests
// and for the examples in the repository: a PE image whose entry point
// returns 0 (xor eax, eax; ret) and a static Linux ELF executable that exits
// with status 0. Output is deterministic, so the committed examples can be
// checked against their generator.
package testbin

import (
	"bytes"
	"encoding/binary"
)

const (
	fileAlign = 0x200
	sectAlign = 0x1000
)

func align(n, a int) int { return (n + a - 1) / a * a }

// PEOptions describe a PE image.
type PEOptions struct {
	// PE32 makes a 32-bit (i386, PE32) image; the default is PE32+ (amd64).
	PE32 bool
	// Code is the .text section's content (default: xor eax, eax; ret).
	Code []byte
	// Data, if set, adds a .data section with this content.
	Data []byte
	// Overlay is appended after the last section (data that is not part of
	// any section, as installers carry).
	Overlay []byte
	// Subsystem is the optional header's Subsystem (default 3, console).
	Subsystem uint16
	// NoChecksum leaves the optional header CheckSum 0.
	NoChecksum bool
}

// PE returns a minimal PE image.
func PE(o PEOptions) []byte {
	code := o.Code
	if code == nil {
		code = []byte{0x31, 0xc0, 0xc3} // xor eax, eax; ret
	}
	type sec struct {
		name  string
		data  []byte
		flags uint32
	}
	secs := []sec{{".text", code, 0x60000020}} // code, execute, read
	if o.Data != nil {
		secs = append(secs, sec{".data", o.Data, 0xc0000040}) // initialized data, read, write
	}
	optSize := 240 // PE32+: 112 + 16 data directories
	machine := uint16(0x8664)
	if o.PE32 {
		optSize = 224
		machine = 0x14c
	}
	const lfanew = 0x40
	hdrEnd := lfanew + 4 + 20 + optSize + 40*len(secs)
	sizeOfHeaders := align(hdrEnd, fileAlign)

	var b bytes.Buffer
	le := binary.LittleEndian
	put16 := func(v uint16) { binary.Write(&b, le, v) }
	put32 := func(v uint32) { binary.Write(&b, le, v) }
	put64 := func(v uint64) { binary.Write(&b, le, v) }

	// DOS header: MZ, e_lfanew at 0x3c.
	dos := make([]byte, lfanew)
	copy(dos, "MZ")
	le.PutUint32(dos[0x3c:], lfanew)
	b.Write(dos)
	b.WriteString("PE\x00\x00")
	// COFF file header.
	put16(machine)
	put16(uint16(len(secs)))
	put32(0) // TimeDateStamp: deterministic
	put32(0)
	put32(0)
	put16(uint16(optSize))
	chars := uint16(0x0002 | 0x0020) // executable, large address aware
	if o.PE32 {
		chars = 0x0002 | 0x0100 // executable, 32-bit machine
	}
	put16(chars)

	// Section layout.
	rva := sectAlign
	raw := sizeOfHeaders
	type placed struct {
		sec
		rva, raw, rawSize int
	}
	var ps []placed
	for _, s := range secs {
		rs := align(len(s.data), fileAlign)
		ps = append(ps, placed{s, rva, raw, rs})
		rva += align(max(len(s.data), 1), sectAlign)
		raw += rs
	}
	sizeOfImage := rva

	// Optional header.
	subsystem := o.Subsystem
	if subsystem == 0 {
		subsystem = 3
	}
	if o.PE32 {
		put16(0x10b)
	} else {
		put16(0x20b)
	}
	b.WriteByte(14) // linker version
	b.WriteByte(0)
	put32(uint32(ps[0].rawSize)) // SizeOfCode
	dataSize := 0
	if len(ps) > 1 {
		dataSize = ps[1].rawSize
	}
	put32(uint32(dataSize))  // SizeOfInitializedData
	put32(0)                 // SizeOfUninitializedData
	put32(uint32(ps[0].rva)) // AddressOfEntryPoint
	put32(uint32(ps[0].rva)) // BaseOfCode
	if o.PE32 {
		put32(0)          // BaseOfData
		put32(0x00400000) // ImageBase
	} else {
		put64(0x140000000)
	}
	put32(sectAlign)
	put32(fileAlign)
	put16(6) // OS version
	put16(0)
	put16(0) // image version
	put16(0)
	put16(6) // subsystem version
	put16(0)
	put32(0) // Win32VersionValue
	put32(uint32(sizeOfImage))
	put32(uint32(sizeOfHeaders))
	put32(0) // CheckSum, patched below
	put16(subsystem)
	put16(0x8160) // DllCharacteristics: dynamic base, NX, terminal server aware, high entropy VA
	if o.PE32 {
		put32(0x100000) // stack reserve, commit, heap reserve, commit
		put32(0x1000)
		put32(0x100000)
		put32(0x1000)
	} else {
		put64(0x100000)
		put64(0x1000)
		put64(0x100000)
		put64(0x1000)
	}
	put32(0)  // LoaderFlags
	put32(16) // NumberOfRvaAndSizes
	for range 16 {
		put64(0)
	}
	// Section table.
	for _, p := range ps {
		var name [8]byte
		copy(name[:], p.name)
		b.Write(name[:])
		put32(uint32(len(p.data)))
		put32(uint32(p.rva))
		put32(uint32(p.rawSize))
		put32(uint32(p.raw))
		put32(0)
		put32(0)
		put16(0)
		put16(0)
		put32(p.flags)
	}
	b.Write(make([]byte, sizeOfHeaders-b.Len()))
	for _, p := range ps {
		b.Write(p.data)
		b.Write(make([]byte, p.rawSize-len(p.data)))
	}
	b.Write(o.Overlay)
	out := b.Bytes()
	if !o.NoChecksum {
		ck := lfanew + 4 + 20 + 64
		le.PutUint32(out[ck:], Checksum(out, ck))
	}
	return out
}

// Checksum computes the PE image checksum of data (the algorithm of
// imagehlp's CheckSumMappedFile): the 16-bit one's-complement-style sum of the
// file with the CheckSum field at ckOff taken as zero, plus the file length.
func Checksum(data []byte, ckOff int) uint32 {
	var sum uint64
	for i := 0; i+1 < len(data); i += 2 {
		if i == ckOff || i == ckOff+2 {
			continue
		}
		sum += uint64(binary.LittleEndian.Uint16(data[i:]))
		sum = (sum & 0xffff) + (sum >> 16)
	}
	if len(data)%2 == 1 {
		sum += uint64(data[len(data)-1])
		sum = (sum & 0xffff) + (sum >> 16)
	}
	sum = (sum & 0xffff) + (sum >> 16)
	return uint32(sum) + uint32(len(data))
}

// ELFOptions describe an ELF executable.
type ELFOptions struct {
	// Class32 makes an i386 ELFCLASS32 file; the default is x86-64.
	Class32 bool
	// Code replaces the default code (exit(0) by system call).
	Code []byte
	// NoSections leaves out the section header table (like a stripped
	// loader-only file).
	NoSections bool
	// Extra is appended at the end of the file (after the section headers).
	Extra []byte
}

// ELF returns a minimal static Linux executable that exits with status 0:
// an ELF header, one PT_LOAD program header covering the file, the code,
// and (unless NoSections) a section header table with .text and .shstrtab.
func ELF(o ELFOptions) []byte {
	is64 := !o.Class32
	code := o.Code
	if code == nil {
		if is64 {
			code = []byte{0xb8, 0x3c, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05} // mov eax, 60; xor edi, edi; syscall
		} else {
			code = []byte{0xb8, 0x01, 0, 0, 0, 0x31, 0xdb, 0xcd, 0x80} // mov eax, 1; xor ebx, ebx; int 0x80
		}
	}
	ehsize, phsize, shsize := 64, 56, 64
	machine := uint16(62) // EM_X86_64
	base := uint64(0x400000)
	if !is64 {
		ehsize, phsize, shsize = 52, 32, 40
		machine = 3 // EM_386
		base = 0x8048000
	}
	codeOff := ehsize + phsize
	shstrtab := []byte("\x00.text\x00.shstrtab\x00")
	strOff := codeOff + len(code)
	shOff := 0
	shnum := 0
	if !o.NoSections {
		shOff = align(strOff+len(shstrtab), 8)
		shnum = 3
	}
	fileEnd := codeOff + len(code)
	if !o.NoSections {
		fileEnd = shOff + shnum*shsize
	}
	entry := base + uint64(codeOff)

	var b bytes.Buffer
	le := binary.LittleEndian
	put16 := func(v uint16) { binary.Write(&b, le, v) }
	put32 := func(v uint32) { binary.Write(&b, le, v) }
	putAddr := func(v uint64) {
		if is64 {
			binary.Write(&b, le, v)
		} else {
			binary.Write(&b, le, uint32(v))
		}
	}
	class := byte(2)
	if !is64 {
		class = 1
	}
	b.Write([]byte{0x7f, 'E', 'L', 'F', class, 1, 1, 0})
	b.Write(make([]byte, 8))
	put16(2) // ET_EXEC
	put16(machine)
	put32(1)
	putAddr(entry)
	putAddr(uint64(ehsize)) // e_phoff
	putAddr(uint64(shOff))  // e_shoff
	put32(0)                // e_flags
	put16(uint16(ehsize))
	put16(uint16(phsize))
	put16(1)
	if o.NoSections {
		put16(0)
		put16(0)
		put16(0)
	} else {
		put16(uint16(shsize))
		put16(uint16(shnum))
		put16(2) // .shstrtab
	}
	// Program header: one PT_LOAD, read + execute, the whole file.
	if is64 {
		put32(1)
		put32(5)
		binary.Write(&b, le, uint64(0))
		binary.Write(&b, le, base)
		binary.Write(&b, le, base)
		binary.Write(&b, le, uint64(fileEnd))
		binary.Write(&b, le, uint64(fileEnd))
		binary.Write(&b, le, uint64(0x1000))
	} else {
		put32(1)
		put32(0)
		put32(uint32(base))
		put32(uint32(base))
		put32(uint32(fileEnd))
		put32(uint32(fileEnd))
		put32(5)
		put32(0x1000)
	}
	b.Write(code)
	if !o.NoSections {
		b.Write(shstrtab)
		b.Write(make([]byte, shOff-b.Len()))
		section := func(name, typ uint32, flags, addr uint64, off, size int) {
			put32(name)
			put32(typ)
			putAddr(flags)
			putAddr(addr)
			putAddr(uint64(off))
			putAddr(uint64(size))
			put32(0) // link
			put32(0) // info
			putAddr(1)
			putAddr(0)
		}
		b.Write(make([]byte, shsize))               // SHN_UNDEF
		section(1, 1, 6, entry, codeOff, len(code)) // .text: PROGBITS, alloc+exec
		section(7, 3, 0, 0, strOff, len(shstrtab))  // .shstrtab: STRTAB
	}
	b.Write(o.Extra)
	return b.Bytes()
}
