/* makecontext for x86-64 on musl; see context.S.
 * SPDX-License-Identifier: MIT
 * Copyright (c) the ingot authors */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdint.h>
#include <ucontext.h>

void __ingot_makecontext_return(void) __attribute__((visibility("hidden")));

void makecontext(ucontext_t *ucp, void (*func)(void), int argc, ...)
{
	static const int argreg[6] = {REG_RDI, REG_RSI, REG_RDX, REG_RCX, REG_R8, REG_R9};
	greg_t *g = ucp->uc_mcontext.gregs;
	int nstack = argc > 6 ? argc - 6 : 0;
	uintptr_t top = ((uintptr_t)ucp->uc_stack.ss_sp + ucp->uc_stack.ss_size) & ~(uintptr_t)15;
	uint64_t *sp = (uint64_t *)top - nstack - 1;
	va_list ap;

	/* On entry func sees what a call leaves: %rsp + 8 16-byte aligned, the
	 * return address at 0(%rsp), arguments past the sixth above it. */
	if (((uintptr_t)sp & 15) != 8)
		sp--;
	sp[0] = (uint64_t)(uintptr_t)__ingot_makecontext_return;
	va_start(ap, argc);
	for (int i = 0; i < argc; i++) {
		/* Arguments are passed as 64-bit words, as glibc does, so that
		 * pointers survive. */
		uint64_t v = va_arg(ap, uint64_t);
		if (i < 6)
			g[argreg[i]] = (greg_t)v;
		else
			sp[1 + i - 6] = v;
	}
	va_end(ap);
	g[REG_RIP] = (greg_t)(uintptr_t)func;
	g[REG_RSP] = (greg_t)(uintptr_t)sp;
	g[REG_RBX] = (greg_t)(uintptr_t)ucp->uc_link;
	g[REG_RBP] = 0;
}
