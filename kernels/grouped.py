"""Grouped conv2d (1 < groups < in_channels) as an implicit GEMM per group, fused epilogue.

Per group g the convolution is a GEMM
    out[m, n] = sum_k A[m, k] * B[k, n]
with m = (batch, oh, ow) output pixels, n = the group's output channels (COUT_G) and
k = (kh, kw, ci) over the group's input channels (CIN_G) and filter taps. A is never
materialized: each A tile is gathered from x for one tap (kh, kw) and a BLOCK_K slice of
the group's channels, which in channels_last is a contiguous run per pixel.

One program per (BLOCK_M pixels, BLOCK_N output channels, group). Two inner products,
chosen by the constexpr USE_DOT:
* USE_DOT (both CIN_G and COUT_G >= 16, fp16/bf16/fp32): tl.dot on tensor cores, fp32
  accumulator; fp32 inputs use input_precision="ieee" (exact fp32, not TF32).
* otherwise (ResNeXt's 4 and 8 channels per group, fp64): a direct loop of rank-1
  updates acc += x[:, c] * w[c, :] on CUDA cores, one input channel at a time.
Packing several small groups into one tensor-core tile (block-diagonal B) would lift the
4- and 8-channel stages onto tensor cores; not done yet (see docs/kernels.md).

File layout: kernel, then launcher, then the eager reference.
"""

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from ._runtime import INTERPRET, empty_output, next_power_of_2, output_memory_format
from .epilogue import apply_activation, torch_epilogue


def grouped_configs():
    """Autotune space over the pixel tile only; BLOCK_N and BLOCK_K follow from the group
    sizes (see `_channel_blocks`). One config under the interpreter."""
    if INTERPRET:
        return [triton.Config({"BLOCK_M": 64}, num_warps=4)]
    return [
        triton.Config({"BLOCK_M": bm}, num_warps=w, num_stages=s)
        for bm, w, s in [(64, 4, 3), (128, 4, 3), (128, 8, 3), (256, 8, 2)]
    ]


@triton.autotune(
    configs=grouped_configs(),
    key=["M", "CIN_G", "COUT_G", "KH", "KW", "STRIDE_H", "STRIDE_W", "CHANNELS_LAST"],
)
@triton.jit
def grouped_conv2d_kernel(
    # pointers (scale/shift/res may be dummies when the HAS_* flag is off)
    x_ptr, w_ptr, scale_ptr, shift_ptr, res_ptr, out_ptr,
    # sizes: M = N * OH * OW output pixels; CIN_G / COUT_G channels per group
    H, W, OH, OW, M, CIN_G, COUT_G,
    # strides, in elements: x, residual, out as (n, c, h, w); weight as (c_out, c_in_g, h, w)
    sxn, sxc, sxh, sxw,
    swo, swi, swh, sww,
    srn, src, srh, srw,
    son, soc, soh, sow,
    # geometry
    PAD_H, PAD_W,
    KH: tl.constexpr, KW: tl.constexpr,
    STRIDE_H: tl.constexpr, STRIDE_W: tl.constexpr,
    DIL_H: tl.constexpr, DIL_W: tl.constexpr,
    CHANNELS_LAST: tl.constexpr,  # only an autotune key
    # epilogue
    HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, HAS_RES: tl.constexpr,
    ACT: tl.constexpr,
    ACC_DTYPE: tl.constexpr,
    # inner product: tensor-core dot or broadcast-reduce
    USE_DOT: tl.constexpr, DOT_PRECISION: tl.constexpr,
    DOT_IN_FP32: tl.constexpr,  # interpreter only: its bf16 tl.dot is wrong, so upcast first
    # tiles
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    g = tl.program_id(2)

    m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_mask = m < M
    n = m // (OH * OW)
    oh = (m // OW) % OH
    ow = m % OW
    n64 = n.to(tl.int64)

    cn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # output channel within the group
    n_mask = cn < COUT_G
    co = g * COUT_G + cn

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
    for kh in tl.static_range(KH):
        ih = oh * STRIDE_H - PAD_H + kh * DIL_H
        for kw in tl.static_range(KW):
            iw = ow * STRIDE_W - PAD_W + kw * DIL_W
            ok = m_mask & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            x_row = x_ptr + n64 * sxn + ih * sxh + iw * sxw  # [BLOCK_M] pixel base pointers
            w_tap = w_ptr + co * swo + kh * swh + kw * sww  # [BLOCK_N]
            for k0 in range(0, CIN_G, BLOCK_K):
                if USE_DOT:
                    ck = k0 + tl.arange(0, BLOCK_K)
                    k_mask = ck < CIN_G
                    a = tl.load(x_row[:, None] + (g * CIN_G + ck)[None, :] * sxc,
                                mask=ok[:, None] & k_mask[None, :], other=0.0)
                    b = tl.load(w_tap[None, :] + ck[:, None] * swi,
                                mask=k_mask[:, None] & n_mask[None, :], other=0.0)
                    if DOT_IN_FP32:
                        a = a.to(tl.float32)
                        b = b.to(tl.float32)
                    acc = tl.dot(a, b, acc, input_precision=DOT_PRECISION)
                else:
                    # outer products, one input channel at a time: pure FMAs into acc
                    for kk in tl.static_range(BLOCK_K):
                        c = k0 + kk
                        a_col = tl.load(x_row + (g * CIN_G + c) * sxc, mask=ok & (c < CIN_G), other=0.0)
                        b_row = tl.load(w_tap + c * swi, mask=n_mask & (c < CIN_G), other=0.0)
                        acc += a_col.to(ACC_DTYPE)[:, None] * b_row.to(ACC_DTYPE)[None, :]

    # epilogue on the fp32 accumulator: act(acc * scale + shift + residual)
    if HAS_SCALE:
        acc = acc * tl.load(scale_ptr + co, mask=n_mask, other=0.0).to(ACC_DTYPE)[None, :]
    if HAS_SHIFT:
        acc = acc + tl.load(shift_ptr + co, mask=n_mask, other=0.0).to(ACC_DTYPE)[None, :]
    out_mask = m_mask[:, None] & n_mask[None, :]
    if HAS_RES:
        r_ptrs = res_ptr + n64[:, None] * srn + co[None, :] * src + oh[:, None] * srh + ow[:, None] * srw
        acc = acc + tl.load(r_ptrs, mask=out_mask, other=0.0).to(ACC_DTYPE)
    acc = apply_activation(acc, ACT)

    o_ptrs = out_ptr + n64[:, None] * son + co[None, :] * soc + oh[:, None] * soh + ow[:, None] * sow
    tl.store(o_ptrs, acc.to(out_ptr.dtype.element_ty), mask=out_mask)


# ---------------------------------------------------------------------------
# Launcher
# ---------------------------------------------------------------------------
DOT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def uses_tensor_cores(dtype, cin_g, cout_g):
    """The tl.dot path needs K and N tiles of at least 16."""
    return dtype in DOT_DTYPES and cin_g >= 16 and cout_g >= 16


def _channel_blocks(use_dot, cin_g, cout_g):
    if use_dot:
        return min(128, next_power_of_2(cout_g)), min(64, next_power_of_2(cin_g))
    # direct loop: BLOCK_K rank-1 updates unrolled per chunk; BLOCK_N columns of acc per pixel
    return min(32, next_power_of_2(cout_g)), min(8, next_power_of_2(cin_g))


def grouped_conv2d(x, weight, stride, padding, dilation, groups, scale=None, shift=None,
                   residual=None, activation=None, out=None):
    """Launch the grouped kernel. Arguments are already validated by `kernels.conv2d`."""
    N, C_in, H, W = x.shape
    C_out, cin_g, KH, KW = weight.shape
    cout_g = C_out // groups
    (SH, SW), (PH, PW), (DH, DW) = stride, padding, dilation
    OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
    OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    if out is None:
        out = empty_output((N, C_out, OH, OW), x.dtype, x.device, output_memory_format(x))
    assert out.shape == (N, C_out, OH, OW), (out.shape, (N, C_out, OH, OW))

    use_dot = uses_tensor_cores(x.dtype, cin_g, cout_g)
    block_n, block_k = _channel_blocks(use_dot, cin_g, cout_g)
    M = N * OH * OW
    res = residual if residual is not None else out  # dummy pointer when unused
    grid = lambda meta: (triton.cdiv(M, meta["BLOCK_M"]), triton.cdiv(cout_g, block_n), groups)  # noqa: E731
    grouped_conv2d_kernel[grid](
        x, weight,
        scale if scale is not None else out, shift if shift is not None else out, res, out,
        H, W, OH, OW, M, cin_g, cout_g,
        *x.stride(), *weight.stride(), *res.stride(), *out.stride(),
        PH, PW,
        KH=KH, KW=KW, STRIDE_H=SH, STRIDE_W=SW, DIL_H=DH, DIL_W=DW,
        CHANNELS_LAST=x.stride(1) == 1,
        HAS_SCALE=scale is not None, HAS_SHIFT=shift is not None, HAS_RES=residual is not None,
        ACT=activation or "none",
        ACC_DTYPE=tl.float64 if x.dtype == torch.float64 else tl.float32,
        USE_DOT=use_dot, DOT_PRECISION="ieee",
        DOT_IN_FP32=INTERPRET and x.dtype == torch.bfloat16,
        BLOCK_N=block_n, BLOCK_K=block_k,
    )
    return out


# ---------------------------------------------------------------------------
# Reference
# ---------------------------------------------------------------------------
def grouped_conv2d_reference(x, weight, stride, padding, dilation, groups, scale=None, shift=None,
                             residual=None, activation=None):
    conv = F.conv2d(x, weight, None, stride, padding, dilation, groups=groups)
    return torch_epilogue(conv, scale, shift, residual, activation)
