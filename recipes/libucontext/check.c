/* Build-time checks: offsets.h matches musl's ucontext_t, and the four
 * functions work (ping-pong between contexts, more than six arguments,
 * uc_link, the signal mask, callee-saved state, MXCSR).
 * SPDX-License-Identifier: MIT
 * Copyright (c) the ingot authors */
#define _GNU_SOURCE
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <xmmintrin.h>
#include "offsets.h"

#define OFF(f, v) _Static_assert(offsetof(ucontext_t, f) == (v), #f)
OFF(uc_link, UC_LINK);
OFF(uc_mcontext, UC_MCONTEXT);
OFF(uc_mcontext.gregs[REG_R8], G_R8);
OFF(uc_mcontext.gregs[REG_R9], G_R9);
OFF(uc_mcontext.gregs[REG_R12], G_R12);
OFF(uc_mcontext.gregs[REG_R15], G_R15);
OFF(uc_mcontext.gregs[REG_RDI], G_RDI);
OFF(uc_mcontext.gregs[REG_RSI], G_RSI);
OFF(uc_mcontext.gregs[REG_RBP], G_RBP);
OFF(uc_mcontext.gregs[REG_RBX], G_RBX);
OFF(uc_mcontext.gregs[REG_RDX], G_RDX);
OFF(uc_mcontext.gregs[REG_RCX], G_RCX);
OFF(uc_mcontext.gregs[REG_RSP], G_RSP);
OFF(uc_mcontext.gregs[REG_RIP], G_RIP);
OFF(uc_mcontext.fpregs, UC_FPREGS);
OFF(uc_sigmask, UC_SIGMASK);
OFF(__fpregs_mem, UC_FPREGS_MEM);
_Static_assert(sizeof(ucontext_t) == UC_SIZE, "sizeof ucontext_t");
_Static_assert(offsetof(struct _fpstate, cwd) == FP_CWD, "cwd");
_Static_assert(offsetof(struct _fpstate, mxcsr) == FP_MXCSR, "mxcsr");
_Static_assert(SIG_SETMASK == SIG_SETMASK_, "SIG_SETMASK");

static ucontext_t main_uc, a_uc, b_uc, link_uc;
static char stack_a[65536] __attribute__((aligned(16)));
static char stack_b[65536 + 8];
static int trace[16], ntrace;
static long sum;

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "check failed: %s (line %d)\n", #c, __LINE__); exit(1); } } while (0)

static void fa(long a1, long a2, long a3, long a4, long a5, long a6, long a7, long a8)
{
	volatile double d = 1.0;
	sigset_t cur;
	CHECK(((unsigned long)__builtin_frame_address(0) & 15) == 0);
	CHECK((_mm_getcsr() & 0x6000u) == 0); /* a's MXCSR, not main's */
	CHECK(sigprocmask(SIG_BLOCK, NULL, &cur) == 0 && sigismember(&cur, SIGUSR1));
	sum = a1 + a2 + a3 + a4 + a5 + a6 + a7 * 1000 + a8 * 10000;
	trace[ntrace++] = 1;
	CHECK(swapcontext(&a_uc, &b_uc) == 0);
	trace[ntrace++] = 3;
	CHECK(d == 1.0);
	CHECK(sigprocmask(SIG_BLOCK, NULL, &cur) == 0 && sigismember(&cur, SIGUSR1));
	/* returning resumes uc_link (link_uc) */
}

static void fb(void *p)
{
	sigset_t cur;
	CHECK(p == &b_uc);
	CHECK(sigprocmask(SIG_BLOCK, NULL, &cur) == 0 && !sigismember(&cur, SIGUSR1));
	trace[ntrace++] = 2;
	CHECK(swapcontext(&b_uc, &a_uc) == 0);
	CHECK(0); /* never resumed */
}

int main(void)
{
	volatile int resumed = 0;
	sigset_t set, old;

	/* getcontext/setcontext round trip */
	CHECK(getcontext(&main_uc) == 0);
	if (!resumed) {
		resumed = 1;
		setcontext(&main_uc);
		CHECK(0);
	}

	/* the signal mask travels with the context */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	CHECK(sigprocmask(SIG_BLOCK, &set, NULL) == 0);

	CHECK(getcontext(&a_uc) == 0);
	a_uc.uc_stack.ss_sp = stack_a;
	a_uc.uc_stack.ss_size = sizeof stack_a;
	a_uc.uc_link = &link_uc;
	makecontext(&a_uc, (void (*)(void))fa, 8, 1L, 2L, 3L, 4L, 5L, 6L, 7L, 8L);

	CHECK(getcontext(&b_uc) == 0);
	b_uc.uc_stack.ss_sp = stack_b + 8; /* misaligned on purpose */
	b_uc.uc_stack.ss_size = sizeof stack_b - 8;
	b_uc.uc_link = NULL;
	sigemptyset(&b_uc.uc_sigmask);
	makecontext(&b_uc, (void (*)(void))fb, 1, &b_uc);

	CHECK(sigprocmask(SIG_UNBLOCK, &set, NULL) == 0);
	_mm_setcsr((_mm_getcsr() & ~0x6000u) | 0x2000u); /* round down */
	CHECK(getcontext(&link_uc) == 0);
	if (ntrace == 0) {
		CHECK(swapcontext(&main_uc, &a_uc) == 0);
		CHECK(0); /* a returns into link_uc, not here */
	}
	CHECK(ntrace == 3 && trace[0] == 1 && trace[1] == 2 && trace[2] == 3);
	CHECK(sum == 1 + 2 + 3 + 4 + 5 + 6 + 7000 + 80000);
	CHECK((_mm_getcsr() & 0x6000u) == 0x2000u);
	CHECK(sigprocmask(SIG_BLOCK, NULL, &old) == 0);
	CHECK(!sigismember(&old, SIGUSR1));
	puts("libucontext: ok");
	return 0;
}
