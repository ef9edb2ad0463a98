/* getcontext, setcontext, swapcontext and the makecontext trampoline for
 * x86-64 on musl, which declares these in <ucontext.h> but does not
 * implement them.
 *
 * A saved context holds what the SysV ABI says survives a call: rsp, rip,
 * rbx, rbp, r12-r15, the x87 control word and MXCSR, plus the six argument
 * registers (so that makecontext can pass up to six arguments in registers)
 * and the signal mask. Resuming a context returns 0 from the getcontext or
 * swapcontext that saved it.
 *
 * SPDX-License-Identifier: MIT
 * Copyright (c) the ingot authors */
#include "offsets.h"

	.text

/* Save the caller's state into the ucontext_t at %rdi. Clobbers %rax. */
.macro SAVE
	movq	%rbx, G_RBX(%rdi)
	movq	%rbp, G_RBP(%rdi)
	movq	%r12, G_R12(%rdi)
	movq	%r13, G_R13(%rdi)
	movq	%r14, G_R14(%rdi)
	movq	%r15, G_R15(%rdi)
	movq	%rdi, G_RDI(%rdi)
	movq	%rsi, G_RSI(%rdi)
	movq	%rdx, G_RDX(%rdi)
	movq	%rcx, G_RCX(%rdi)
	movq	%r8, G_R8(%rdi)
	movq	%r9, G_R9(%rdi)
	movq	(%rsp), %rax		/* resume at our return address */
	movq	%rax, G_RIP(%rdi)
	leaq	8(%rsp), %rax		/* with the caller's stack pointer */
	movq	%rax, G_RSP(%rdi)
	leaq	UC_FPREGS_MEM(%rdi), %rax
	movq	%rax, UC_FPREGS(%rdi)
	fnstcw	FP_CWD(%rax)
	stmxcsr	FP_MXCSR(%rax)
.endm

/* int getcontext(ucontext_t *ucp) */
	.globl	getcontext
	.type	getcontext, @function
	.p2align 4
getcontext:
	.cfi_startproc
	SAVE
	/* sigprocmask(SIG_BLOCK, NULL, &ucp->uc_sigmask): 0, or -1 and errno */
	subq	$8, %rsp
	.cfi_adjust_cfa_offset 8
	leaq	UC_SIGMASK(%rdi), %rdx
	xorl	%esi, %esi
	xorl	%edi, %edi
	call	sigprocmask@PLT
	addq	$8, %rsp
	.cfi_adjust_cfa_offset -8
	ret
	.cfi_endproc
	.size	getcontext, .-getcontext

/* int setcontext(const ucontext_t *ucp): returns only on error (-1). */
	.globl	setcontext
	.type	setcontext, @function
	.globl	__ingot_setcontext
	.hidden	__ingot_setcontext
	.type	__ingot_setcontext, @function
	.p2align 4
setcontext:
__ingot_setcontext:
	.cfi_startproc
	pushq	%rdi
	.cfi_adjust_cfa_offset 8
	leaq	UC_SIGMASK(%rdi), %rsi
	xorl	%edx, %edx
	movl	$SIG_SETMASK_, %edi
	call	sigprocmask@PLT
	popq	%rdx
	.cfi_adjust_cfa_offset -8
	testl	%eax, %eax
	jz	.Lrestore
	ret
	.cfi_endproc
	.size	setcontext, .-setcontext
	.size	__ingot_setcontext, .-__ingot_setcontext

/* int swapcontext(ucontext_t *oucp, const ucontext_t *ucp) */
	.globl	swapcontext
	.type	swapcontext, @function
	.p2align 4
swapcontext:
	.cfi_startproc
	SAVE
	/* sigprocmask(SIG_SETMASK, &ucp->uc_sigmask, &oucp->uc_sigmask) */
	pushq	%rsi
	.cfi_adjust_cfa_offset 8
	leaq	UC_SIGMASK(%rdi), %rdx
	leaq	UC_SIGMASK(%rsi), %rsi
	movl	$SIG_SETMASK_, %edi
	call	sigprocmask@PLT
	popq	%rdx
	.cfi_adjust_cfa_offset -8
	testl	%eax, %eax
	jz	.Lrestore
	ret
	.cfi_endproc
	.size	swapcontext, .-swapcontext

/* Load the context at %rdx and jump to it; never returns. */
	.p2align 4
.Lrestore:
	movq	UC_FPREGS(%rdx), %rax
	testq	%rax, %rax
	jz	1f
	fldcw	FP_CWD(%rax)
	ldmxcsr	FP_MXCSR(%rax)
1:	movq	G_RSP(%rdx), %rsp
	movq	G_RBX(%rdx), %rbx
	movq	G_RBP(%rdx), %rbp
	movq	G_R12(%rdx), %r12
	movq	G_R13(%rdx), %r13
	movq	G_R14(%rdx), %r14
	movq	G_R15(%rdx), %r15
	movq	G_RDI(%rdx), %rdi
	movq	G_RSI(%rdx), %rsi
	movq	G_RCX(%rdx), %rcx
	movq	G_R8(%rdx), %r8
	movq	G_R9(%rdx), %r9
	movq	G_RIP(%rdx), %r11
	movq	G_RDX(%rdx), %rdx
	xorl	%eax, %eax
	jmp	*%r11

/* Where a makecontext function returns to: makecontext put uc_link in %rbx
 * (callee-saved, so the function kept it). Resume uc_link, or exit(0) when
 * there is none. The stack is 16-byte aligned here. */
	.globl	__ingot_makecontext_return
	.hidden	__ingot_makecontext_return
	.type	__ingot_makecontext_return, @function
	.p2align 4
__ingot_makecontext_return:
	.cfi_startproc
	.cfi_undefined rip
	testq	%rbx, %rbx
	jz	1f
	movq	%rbx, %rdi
	call	__ingot_setcontext
1:	xorl	%edi, %edi
	call	exit@PLT
	hlt
	.cfi_endproc
	.size	__ingot_makecontext_return, .-__ingot_makecontext_return

	.section .note.GNU-stack,"",@progbits
