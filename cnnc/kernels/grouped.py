"""Grouped conv2d (1 < groups < in_channels) as an implicit GEMM per group, fused epilogue.

Per group g the convolution is a GEMM
    out[m, n] = sum_k A[m, k] * B[k, n]
with m = (batch, oh, ow) output pixels, n = the group's output channels (COUT_G) and
k = (kh, kw, ci) over the group's input channels (CIN_G) and filter taps. A is never
materialized: each A tile is gathered from x for one tap (kh, kw) and a BLOCK_K slice of
the group's channels, which in channels_last is a contiguous run per pixel.

Group packing: one program handles PACK consecutive groups g0 .. g0+PACK-1 (PACK = 1 for
large groups). Its K range is the PACK*CIN_G consecutive input channels of those groups
(still one contiguous run per pixel in channels_last), its N range their PACK*COUT_G
consecutive output channels, and B is block-diagonal:
    B[k, n] = weight[g0*COUT_G + n, k % CIN_G, kh, kw]  if k // CIN_G == n // COUT_G  else 0
(the zeros come from the load mask). So groups of 4 or 8 channels still make K and N
tiles of >= 16, what tl.dot needs; only 1/PACK of the B tile is nonzero, the price paid
for tensor cores. A last pack may hold fewer than PACK groups (groups % PACK != 0): the
missing groups' channels are masked off.

One program per (BLOCK_M pixels, BLOCK_N output channels, pack of PACK groups). Two inner
products, chosen by the constexpr USE_DOT (the launcher's `group_pack` decides):
* USE_DOT (fp16/bf16/fp32 with CIN_G and COUT_G >= 16, PACK = 1; or fp16/bf16 with
  smaller groups packed, PACK > 1, e.g. ResNeXt's 4 and 8 channels per group): tl.dot,
  fp32 accumulator, on tensor cores for fp16/bf16; fp32 inputs use input_precision="ieee"
  (exact fp32, not TF32), which Triton lowers to FMAs rather than tensor cores.
* otherwise (fp64; fp32 with groups < 16 channels; packs that would be wider than 64
  channels): a direct loop of rank-1 updates acc += x[:, c] * w[c, :] on CUDA cores, one
  input channel at a time, PACK = 1.

File layout: kernel, then launcher, then the eager reference.
"""

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from ._runtime import (INTERPRET, accumulator_dtype, autotune, cdiv, empty_output, launch, next_power_of_2, output_hw,
                       launch_prepared, output_memory_format, relayout)
from .epilogue import ACT_CODES, apply_activation, torch_epilogue
from .policy import resolve


def grouped_configs():
    """Autotune space over the pixel tile only; BLOCK_N and BLOCK_K follow from the group
    sizes (see `_channel_blocks`). One config under the interpreter."""
    if INTERPRET:
        return [triton.Config({"BLOCK_M": 64}, num_warps=4)]
    return [triton.Config({"BLOCK_M": bm}, num_warps=w, num_stages=s)
            for bm, w, s in [(64, 4, 3), (128, 4, 3), (128, 8, 3), (256, 8, 2)]]


@autotune(configs=grouped_configs(), key=["M"])  # + every constexpr but BLOCK_M (`_runtime.autotune`)
@triton.jit
def grouped_conv2d_kernel(
    # pointers (scale/shift/res may be dummies when the HAS_* flag is off)
    x_ptr, w_ptr, scale_ptr, shift_ptr, res_ptr, out_ptr,
    # sizes: M = N * OH * OW output pixels
    H, W, OH, OW, M, GROUPS,
    # strides, in elements: x, residual, out as (n, c, h, w); weight as (c_out, c_in_g, h, w)
    sxn, sxc, sxh, sxw,
    swo, swi, swh, sww,
    srn, src, srh, srw,
    son, soc, soh, sow,
    # geometry
    PAD_H, PAD_W,
    # channels per group, constexpr so that a pack's first channel, a multiple of PACK * CIN_G,
    # is known to be aligned and its loads can be vectorized (few distinct values in practice)
    CIN_G: tl.constexpr, COUT_G: tl.constexpr,
    KH: tl.constexpr, KW: tl.constexpr,
    STRIDE_H: tl.constexpr, STRIDE_W: tl.constexpr,
    DIL_H: tl.constexpr, DIL_W: tl.constexpr,
    CHANNELS_LAST: tl.constexpr,  # only an autotune key
    # epilogue
    HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, HAS_RES: tl.constexpr,
    ACT: tl.constexpr,
    ACC_DTYPE: tl.constexpr,
    # inner product: tensor-core dot or broadcast-reduce
    USE_DOT: tl.constexpr,
    DOT_IN_FP32: tl.constexpr,  # interpreter only: its bf16 tl.dot is wrong, so upcast first
    PACK: tl.constexpr,  # consecutive groups per program (block-diagonal B); 1 = one group
    PARTIAL_PACKS: tl.constexpr,  # PACK does not divide GROUPS: the last pack is partial
    TUNING: tl.constexpr,  # only an autotune key: the policy's choices and the device (`tuning_tag`)
    # tiles
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    tl.static_assert(USE_DOT or PACK == 1, "the direct loop handles one group per program")
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    g0 = tl.program_id(2) * PACK  # first group of this program's pack

    m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_mask = m < M
    n = m // (OH * OW)
    oh = (m // OW) % OH
    ow = m % OW
    n64 = n.to(tl.int64)

    # channels of the pack: groups g0 .. g0+PACK-1, fewer in a last, partial pack. Without
    # partial packs the limits are constants, so the masks are known to be uniform over whole
    # packs and the loads of a pack's channels can be as wide as the pack
    if PACK == 1 or not PARTIAL_PACKS:
        k_lim = PACK * CIN_G
        n_lim = PACK * COUT_G
    else:
        groups_here = tl.minimum(GROUPS - g0, PACK)
        k_lim = groups_here * CIN_G
        n_lim = groups_here * COUT_G

    cn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # output channel within the pack
    n_mask = cn < n_lim
    co = g0 * COUT_G + cn

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
    for kh in tl.static_range(KH):
        ih = oh * STRIDE_H - PAD_H + kh * DIL_H
        for kw in tl.static_range(KW):
            iw = ow * STRIDE_W - PAD_W + kw * DIL_W
            ok = m_mask & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            x_row = x_ptr + n64 * sxn + ih * sxh + iw * sxw  # [BLOCK_M] pixel base pointers
            w_tap = w_ptr + co * swo + kh * swh + kw * sww  # [BLOCK_N]
            for k0 in range(0, k_lim, BLOCK_K):
                if USE_DOT:
                    ck = k0 + tl.arange(0, BLOCK_K)  # input channel within the pack
                    k_mask = ck < k_lim
                    a = tl.load(x_row[:, None] + (g0 * CIN_G + ck)[None, :] * sxc,
                                mask=ok[:, None] & k_mask[None, :], other=0.0)
                    if PACK == 1:
                        b = tl.load(w_tap[None, :] + ck[:, None] * swi,
                                    mask=k_mask[:, None] & n_mask[None, :], other=0.0)
                    else:
                        # block-diagonal: input channel k feeds output channel n only
                        # when both belong to the same group of the pack
                        same_group = (ck // CIN_G)[:, None] == (cn // COUT_G)[None, :]
                        b = tl.load(w_tap[None, :] + (ck % CIN_G)[:, None] * swi,
                                    mask=k_mask[:, None] & n_mask[None, :] & same_group,
                                    other=0.0)
                    if DOT_IN_FP32:
                        a = a.to(tl.float32)
                        b = b.to(tl.float32)
                    acc = tl.dot(a, b, acc, input_precision="ieee")
                else:
                    # outer products, one input channel at a time: pure FMAs into acc
                    for kk in tl.static_range(BLOCK_K):
                        c = k0 + kk
                        a_col = tl.load(x_row + (g0 * CIN_G + c) * sxc, mask=ok & (c < CIN_G), other=0.0)
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
# dtypes whose small groups are packed: those tl.dot runs on tensor cores. fp32 is not
# packed: at input_precision="ieee" its tl.dot is FMAs on CUDA cores, where the zeros of
# a block-diagonal B would cost PACK times the direct loop's multiply-adds.
PACK_DTYPES = (torch.float16, torch.bfloat16)
# tl.dot needs K and N tiles of at least 16.
MIN_DOT_WIDTH = 16
# Widest packed K or N range (PACK * channels per group) worth packing; see `group_pack`.
MAX_PACKED_WIDTH = 64


def group_pack(dtype, cin_g, cout_g):
    """Groups per program on the tl.dot path, or None for the direct loop.

    1 when both channel counts are already >= 16 (plain per-group GEMM). Otherwise, for
    fp16/bf16, the smallest PACK with PACK*cin_g >= 16 and PACK*cout_g >= 16: only 1/PACK
    of the block-diagonal B tile is nonzero, so the tensor-core work per useful
    multiply-add grows with PACK and the smallest PACK that reaches tl.dot's minimum wastes
    least (ResNeXt-50 32x4d: 4 channels/group -> PACK 4, 8 -> PACK 2, i.e. 16-wide tiles,
    32 bytes of fp16 per pixel per load). A larger PACK would widen the contiguous
    channels_last loads (64 bytes at 32 channels) at twice the wasted MMA work; not chosen
    without a GPU measurement. Packs wider than MAX_PACKED_WIDTH channels in K or N (e.g. 4
    in / 32 out per group would need 128 output channels per tile at 1/4 density) keep the
    direct loop. PACK need not divide groups: a last, partial pack is masked.
    """
    if dtype not in DOT_DTYPES:
        return None  # fp64: exact direct loop
    if cin_g >= MIN_DOT_WIDTH and cout_g >= MIN_DOT_WIDTH:
        return 1
    if dtype not in PACK_DTYPES:
        return None
    pack = max(cdiv(MIN_DOT_WIDTH, cin_g), cdiv(MIN_DOT_WIDTH, cout_g))
    if pack * max(cin_g, cout_g) > MAX_PACKED_WIDTH:
        return None
    return pack


def uses_tensor_cores(dtype, cin_g, cout_g):
    """True when the call takes the tl.dot path (per group, or with small groups packed
    into one block-diagonal tile; see `group_pack`). Independent of the number of groups:
    a partial last pack is masked. (fp32 takes tl.dot at input_precision="ieee", which
    runs on FMAs, not tensor cores, despite the name.)"""
    return group_pack(dtype, cin_g, cout_g) is not None


def _channel_blocks(pack, cin_g, cout_g):
    if pack is not None:
        # the whole pack in one tile when packed (PACK * width <= MAX_PACKED_WIDTH)
        return min(128, next_power_of_2(pack * cout_g)), min(64, next_power_of_2(pack * cin_g))
    # direct loop: BLOCK_K rank-1 updates unrolled per chunk; BLOCK_N columns of acc per pixel
    return min(32, next_power_of_2(cout_g)), min(8, next_power_of_2(cin_g))


def grouped_conv2d(x, weight, stride, padding, dilation, groups, scale=None, shift=None,
                   residual=None, activation=None, out=None, *, pack="auto", policy=None, memo_key=None):
    """Launch the grouped kernel. Arguments are already validated by `kernels.conv2d`.

    `pack` is for tests: "auto" (the default) takes `group_pack`'s choice; an int forces
    the tl.dot path with that many groups per program, None forces the direct loop.
    `policy`: see `policy.resolve` (None: the default policy). `memo_key`: as for
    `depthwise.depthwise_conv2d`, the prepared launch's key."""
    N, C_in, H, W = x.shape
    C_out, cin_g, KH, KW = weight.shape
    cout_g = C_out // groups
    (SH, SW), (PH, PW), (DH, DW) = stride, padding, dilation
    OH, OW = output_hw(H, W, (KH, KW), stride, padding, dilation)
    if out is None:
        out = empty_output((N, C_out, OH, OW), x.dtype, x.device, output_memory_format(x))
    assert out.shape == (N, C_out, OH, OW), (out.shape, (N, C_out, OH, OW))

    if pack == "auto":
        pack = group_pack(x.dtype, cin_g, cout_g)
    assert pack is None or (x.dtype in DOT_DTYPES and pack >= 1), (pack, x.dtype)
    block_n, block_k = _channel_blocks(pack, cin_g, cout_g)
    assert pack is None or pack == 1 or (block_n >= pack * cout_g), "a pack spans one N tile"
    M = N * OH * OW
    n_tiles = cdiv((pack or 1) * cout_g, block_n)  # 1 when packed
    n_packs = cdiv(groups, pack or 1)  # the last pack may be partial
    res = residual if residual is not None else out  # dummy pointer when unused
    grid = lambda meta: (cdiv(M, meta["BLOCK_M"]), n_tiles, n_packs)  # noqa: E731
    # the filter tap-major, [KH, KW, cin_g, C_out] (a small copy): a tap's weights for consecutive
    # output channels are then contiguous, so the B tiles load as vectors rather than as
    # scalars KH*KW elements apart (torch's [C_out, cin_g, KH, KW])
    w_arg = grouped_operand(weight)
    w_strides = (w_arg.stride(3), w_arg.stride(2), w_arg.stride(0), w_arg.stride(1))  # (c_out, c_in_g, h, w)
    tensors = (x, w_arg, scale if scale is not None else out, shift if shift is not None else out, res, out)
    policy = resolve(policy)
    key = (pack, memo_key or (x.shape, x.stride(), x.dtype, x.device, out.stride(), weight.shape, stride, padding,
                              dilation, groups, activation, policy, None if residual is None else res.stride(),
                              None if scale is None else scale.dtype, None if shift is None else shift.dtype))

    def build():
        scalars = (H, W, OH, OW, M, groups, *x.stride(), *w_strides, *res.stride(), *out.stride(), PH, PW)
        constexprs = dict(
            CIN_G=cin_g, COUT_G=cout_g, KH=KH, KW=KW, STRIDE_H=SH, STRIDE_W=SW, DIL_H=DH, DIL_W=DW,
            CHANNELS_LAST=x.stride(1) == 1,
            HAS_SCALE=scale is not None, HAS_SHIFT=shift is not None, HAS_RES=residual is not None,
            ACT=ACT_CODES[activation],
            ACC_DTYPE=tl.float64 if accumulator_dtype(x.dtype) == torch.float64 else tl.float32,
            USE_DOT=pack is not None,
            DOT_IN_FP32=INTERPRET and x.dtype == torch.bfloat16,
            PACK=pack or 1, PARTIAL_PACKS=groups % (pack or 1) != 0,
            BLOCK_N=block_n, BLOCK_K=block_k)
        return grid, scalars, constexprs

    launch_prepared(_LAUNCHES, key, grouped_conv2d_kernel, policy, tensors, build)
    return out


# The launches made ready per argument signature (`_runtime.launch_prepared`).
_LAUNCHES: dict = {}


def grouped_operand(weight):
    """The filter as the kernel reads it, [KH, KW, cin_g, C_out] contiguous, made once per weight
    version (`_runtime.relayout`)."""
    return relayout(weight, "kh,kw,cin,cout", _permuted)


def _permuted(weight):
    return weight.permute(2, 3, 1, 0).contiguous()


# ---------------------------------------------------------------------------
# Reference
# ---------------------------------------------------------------------------
def grouped_conv2d_reference(x, weight, stride, padding, dilation, groups, scale=None, shift=None,
                             residual=None, activation=None):
    conv = F.conv2d(x, weight, None, stride, padding, dilation, groups=groups)
    return torch_epilogue(conv, scale, shift, residual, activation)
