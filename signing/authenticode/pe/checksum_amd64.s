#include "textflag.h"

// func sumWordsAVX2(p *byte, n int, out *[16]uint32)
//
// Y0 accumulates the low 16-bit word of every 32-bit lane, Y1 the high;
// n is a multiple of 32 and at most 1 MiB (checksum_amd64.go).
TEXT ·sumWordsAVX2(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ out+16(FP), DI
	VPXOR    Y0, Y0, Y0
	VPXOR    Y1, Y1, Y1
	VPCMPEQD Y15, Y15, Y15
	VPSRLD   $16, Y15, Y15 // 0x0000ffff in every lane

loop64:
	CMPQ    CX, $64
	JB      tail32
	VMOVDQU (SI), Y2
	VMOVDQU 32(SI), Y3
	VPAND   Y15, Y2, Y4
	VPSRLD  $16, Y2, Y2
	VPAND   Y15, Y3, Y5
	VPSRLD  $16, Y3, Y3
	VPADDD  Y4, Y0, Y0
	VPADDD  Y2, Y1, Y1
	VPADDD  Y5, Y0, Y0
	VPADDD  Y3, Y1, Y1
	ADDQ    $64, SI
	SUBQ    $64, CX
	JMP     loop64

tail32:
	CMPQ    CX, $32
	JB      done
	VMOVDQU (SI), Y2
	VPAND   Y15, Y2, Y4
	VPSRLD  $16, Y2, Y2
	VPADDD  Y4, Y0, Y0
	VPADDD  Y2, Y1, Y1

done:
	VMOVDQU Y0, (DI)
	VMOVDQU Y1, 32(DI)
	VZEROUPPER
	RET
