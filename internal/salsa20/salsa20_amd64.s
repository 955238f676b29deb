//go:build amd64 && !purego

#include "textflag.h"

// Sixteen Salsa20 blocks at once: register Zi holds word i of the input
// matrix for blocks 0..15 of the chunk, one block per 32-bit lane. Z16 holds
// the counter's low word of each lane, Z17-Z20 are scratch, Z21 is 16 in
// every lane (the counter step between chunks).

// lanes is 0, 1, ..., 15: the block number of each lane within a chunk.
DATA lanes<>+0(SB)/4, $0
DATA lanes<>+4(SB)/4, $1
DATA lanes<>+8(SB)/4, $2
DATA lanes<>+12(SB)/4, $3
DATA lanes<>+16(SB)/4, $4
DATA lanes<>+20(SB)/4, $5
DATA lanes<>+24(SB)/4, $6
DATA lanes<>+28(SB)/4, $7
DATA lanes<>+32(SB)/4, $8
DATA lanes<>+36(SB)/4, $9
DATA lanes<>+40(SB)/4, $10
DATA lanes<>+44(SB)/4, $11
DATA lanes<>+48(SB)/4, $12
DATA lanes<>+52(SB)/4, $13
DATA lanes<>+56(SB)/4, $14
DATA lanes<>+60(SB)/4, $15
GLOBL lanes<>(SB), RODATA|NOPTR, $64

// x ^= (a + b) <<< r, with t as scratch.
#define STEP(a, b, x, t, r) \
	VPADDD b, a, t; \
	VPROLD $r, t, t; \
	VPXORD t, x, x

// Four independent quarter-rounds, interleaved step by step so the vector
// units always have work. A quarter-round on (a, b, c, d) is
// b ^= (a+d)<<<7; c ^= (b+a)<<<9; d ^= (c+b)<<<13; a ^= (d+c)<<<18.
#define QUARTERS(a1, b1, c1, d1, a2, b2, c2, d2, a3, b3, c3, d3, a4, b4, c4, d4) \
	STEP(a1, d1, b1, Z17, 7); STEP(a2, d2, b2, Z18, 7); STEP(a3, d3, b3, Z19, 7); STEP(a4, d4, b4, Z20, 7); \
	STEP(b1, a1, c1, Z17, 9); STEP(b2, a2, c2, Z18, 9); STEP(b3, a3, c3, Z19, 9); STEP(b4, a4, c4, Z20, 9); \
	STEP(c1, b1, d1, Z17, 13); STEP(c2, b2, d2, Z18, 13); STEP(c3, b3, d3, Z19, 13); STEP(c4, b4, d4, Z20, 13); \
	STEP(d1, c1, a1, Z17, 18); STEP(d2, c2, a2, Z18, 18); STEP(d3, c3, a3, Z19, 18); STEP(d4, c4, a4, Z20, 18)

// Within each 128-bit lane, transpose the 4x4 words of a, b, c, d: after
// it, a's lane holds the first word of each, b's the second, and so on.
#define TRANSPOSE4(a, b, c, d) \
	VPUNPCKLDQ b, a, Z17; \
	VPUNPCKHDQ b, a, Z18; \
	VPUNPCKLDQ d, c, Z19; \
	VPUNPCKHDQ d, c, Z20; \
	VPUNPCKLQDQ Z19, Z17, a; \
	VPUNPCKHQDQ Z19, Z17, b; \
	VPUNPCKLQDQ Z20, Z18, c; \
	VPUNPCKHQDQ Z20, Z18, d

// Transpose the 128-bit lanes of a, b, c, d (a 4x4 of lanes), so each
// register becomes one whole block, and XOR blocks p, 4+p, 8+p and 12+p of
// the chunk from SI into DI.
#define BLOCKS(a, b, c, d, p) \
	VSHUFI32X4 $0x88, b, a, Z17; \
	VSHUFI32X4 $0xdd, b, a, Z18; \
	VSHUFI32X4 $0x88, d, c, Z19; \
	VSHUFI32X4 $0xdd, d, c, Z20; \
	VSHUFI32X4 $0x88, Z19, Z17, a; \
	VSHUFI32X4 $0x88, Z20, Z18, b; \
	VSHUFI32X4 $0xdd, Z19, Z17, c; \
	VSHUFI32X4 $0xdd, Z20, Z18, d; \
	VPXORD (64*(p))(SI), a, a; \
	VPXORD (64*(4+p))(SI), b, b; \
	VPXORD (64*(8+p))(SI), c, c; \
	VPXORD (64*(12+p))(SI), d, d; \
	VMOVDQU32 a, (64*(p))(DI); \
	VMOVDQU32 b, (64*(4+p))(DI); \
	VMOVDQU32 c, (64*(8+p))(DI); \
	VMOVDQU32 d, (64*(12+p))(DI)

// func xorChunks(dst, src *byte, n int, state *[16]uint32)
TEXT ·xorChunks(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ state+24(FP), DX

	VPBROADCASTD 32(DX), Z16
	VPADDD lanes<>(SB), Z16, Z16
	MOVL $16, AX
	VPBROADCASTD AX, Z21

chunk:
	VPBROADCASTD 0(DX), Z0
	VPBROADCASTD 4(DX), Z1
	VPBROADCASTD 8(DX), Z2
	VPBROADCASTD 12(DX), Z3
	VPBROADCASTD 16(DX), Z4
	VPBROADCASTD 20(DX), Z5
	VPBROADCASTD 24(DX), Z6
	VPBROADCASTD 28(DX), Z7
	VMOVDQA32 Z16, Z8
	VPBROADCASTD 36(DX), Z9
	VPBROADCASTD 40(DX), Z10
	VPBROADCASTD 44(DX), Z11
	VPBROADCASTD 48(DX), Z12
	VPBROADCASTD 52(DX), Z13
	VPBROADCASTD 56(DX), Z14
	VPBROADCASTD 60(DX), Z15

	MOVQ $10, BX

doubleround:
	// Columns, then rows.
	QUARTERS(Z0, Z4, Z8, Z12, Z5, Z9, Z13, Z1, Z10, Z14, Z2, Z6, Z15, Z3, Z7, Z11)
	QUARTERS(Z0, Z1, Z2, Z3, Z5, Z6, Z7, Z4, Z10, Z11, Z8, Z9, Z15, Z12, Z13, Z14)
	DECQ BX
	JNZ  doubleround

	// Add the input matrix.
	VPADDD.BCST 0(DX), Z0, Z0
	VPADDD.BCST 4(DX), Z1, Z1
	VPADDD.BCST 8(DX), Z2, Z2
	VPADDD.BCST 12(DX), Z3, Z3
	VPADDD.BCST 16(DX), Z4, Z4
	VPADDD.BCST 20(DX), Z5, Z5
	VPADDD.BCST 24(DX), Z6, Z6
	VPADDD.BCST 28(DX), Z7, Z7
	VPADDD Z16, Z8, Z8
	VPADDD.BCST 36(DX), Z9, Z9
	VPADDD.BCST 40(DX), Z10, Z10
	VPADDD.BCST 44(DX), Z11, Z11
	VPADDD.BCST 48(DX), Z12, Z12
	VPADDD.BCST 52(DX), Z13, Z13
	VPADDD.BCST 56(DX), Z14, Z14
	VPADDD.BCST 60(DX), Z15, Z15

	// Turn word-per-register into block-per-register: after TRANSPOSE4,
	// lane L of register 4g+p holds words 4g..4g+3 of block 4L+p.
	TRANSPOSE4(Z0, Z1, Z2, Z3)
	TRANSPOSE4(Z4, Z5, Z6, Z7)
	TRANSPOSE4(Z8, Z9, Z10, Z11)
	TRANSPOSE4(Z12, Z13, Z14, Z15)
	BLOCKS(Z0, Z4, Z8, Z12, 0)
	BLOCKS(Z1, Z5, Z9, Z13, 1)
	BLOCKS(Z2, Z6, Z10, Z14, 2)
	BLOCKS(Z3, Z7, Z11, Z15, 3)

	VPADDD Z21, Z16, Z16
	ADDQ $1024, SI
	ADDQ $1024, DI
	DECQ CX
	JNZ  chunk

	VZEROUPPER
	RET
