/* Offsets into musl's x86-64 ucontext_t (arch/x86_64/bits/signal.h), shared by
 * context.S and checked against the C definitions by check.c at build time.
 * SPDX-License-Identifier: MIT
 * Copyright (c) the ingot authors */
#ifndef INGOT_UCONTEXT_OFFSETS_H
#define INGOT_UCONTEXT_OFFSETS_H

#define UC_LINK        8
#define UC_MCONTEXT    40
#define UC_GREG(i)     (UC_MCONTEXT + 8 * (i))
#define UC_FPREGS      (UC_MCONTEXT + 8 * 23)     /* mcontext_t.fpregs */
#define UC_SIGMASK     (UC_FPREGS + 8 + 8 * 8)    /* after __reserved1[8] */
#define UC_FPREGS_MEM  (UC_SIGMASK + 128)         /* ucontext_t.__fpregs_mem */
#define UC_SIZE        (UC_FPREGS_MEM + 8 * 64)

/* gregs[] indices (REG_*) */
#define G_R8   UC_GREG(0)
#define G_R9   UC_GREG(1)
#define G_R12  UC_GREG(4)
#define G_R13  UC_GREG(5)
#define G_R14  UC_GREG(6)
#define G_R15  UC_GREG(7)
#define G_RDI  UC_GREG(8)
#define G_RSI  UC_GREG(9)
#define G_RBP  UC_GREG(10)
#define G_RBX  UC_GREG(11)
#define G_RDX  UC_GREG(12)
#define G_RCX  UC_GREG(14)
#define G_RSP  UC_GREG(15)
#define G_RIP  UC_GREG(16)

/* struct _fpstate */
#define FP_CWD    0
#define FP_MXCSR  24

#define SIG_SETMASK_ 2

#endif
