"""Depthwise conv2d (groups == in_channels, channel multiplier MULT) with a fused epilogue.

Depthwise convolution does ~4.5 FLOP per byte (ANCHORS §4): it is bound by memory
bandwidth, so the design goal is to touch each input and output byte once.

* One program per (batch image x spatial tile of BLOCK_H x BLOCK_W outputs, channel block
  of BLOCK_C output channels). With channels_last input the tile's loads run along C,
  which is the contiguous axis: each pixel's BLOCK_C channels are one vectorized load.
  Strides are passed in, so NCHW works too (then the W axis is the contiguous one).
* Register blocking: the accumulator is a [BLOCK_H*BLOCK_W, BLOCK_C] fp32 tile; each
  filter tap is loaded once per program as a BLOCK_C vector and reused by every output of
  the tile, and the KH*KW taps are unrolled (KH, KW are constexpr). The overlapping input
  windows of neighbouring outputs are re-read through L1, so DRAM sees each input about
  once. For 7x7 a larger spatial tile amortizes the 49 tap loads.
* The epilogue (scale, shift, residual, activation) runs on the fp32 accumulator before
  the single store, so there is no extra pass over the activation.

Backward pieces that are Triton kernels live here too:
* input gradient, any stride, dilation, padding and MULT: a gather over the taps that
  read each input pixel, split by stride phase so every tap/phase pairing is settled at
  compile time (`depthwise_input_grad_kernel`);
* weight gradient: a reduction over (N, OH, OW) for one tap or a block of taps per program
  (`depthwise_weight_grad_kernel`).
Both are deterministic (no atomics).

File layout: kernels, then launchers, then the eager reference.
"""

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from ._runtime import (INTERPRET, accumulator_dtype, autotune, cdiv, empty_output, launch, next_power_of_2, output_hw,
                       launch_prepared, output_memory_format, relayout)
from .epilogue import ACT_CODES, apply_activation, apply_activation_grad, torch_epilogue
from .policy import resolve


def depthwise_configs():
    """Autotune space for the forward kernel: a few tile shapes, kept small on purpose.

    channels_last wants wide BLOCK_C (contiguous, vectorized loads); NCHW wants wide
    BLOCK_W. Under the interpreter there is a single large tile so CI runs few programs.
    """
    if INTERPRET:
        return [triton.Config({"BLOCK_H": 8, "BLOCK_W": 8, "BLOCK_C": 16}, num_warps=4)]
    shapes = [
        # (BLOCK_H, BLOCK_W, BLOCK_C, num_warps)
        (4, 8, 64, 4),
        (8, 8, 32, 4),
        (8, 16, 32, 8),
        (2, 16, 64, 4),
        (4, 32, 16, 4),  # NCHW-friendly: long contiguous runs along W
        (8, 8, 128, 8),
    ]
    return [triton.Config({"BLOCK_H": bh, "BLOCK_W": bw, "BLOCK_C": bc}, num_warps=w, num_stages=1)
            for bh, bw, bc, w in shapes]


@triton.jit
def _aligned(stride, ALIGN: tl.constexpr):
    """`stride`, with the compiler told it is a multiple of ALIGN (`stride_align` checked)."""
    if ALIGN > 1:
        stride = stride // ALIGN * ALIGN  # divisibility ALIGN, by Triton's axis analysis
    return stride


@triton.jit
def _pixel_strides(sn, sh, sw, ALIGN: tl.constexpr):
    """A tensor's (n, h, w) strides through `_aligned`."""
    return _aligned(sn, ALIGN), _aligned(sh, ALIGN), _aligned(sw, ALIGN)


@triton.jit
def _tile_origin(ROWS, COLS, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """Grid axis 0 is (n, tile row, tile column) flattened over ROWS x COLS positions: this
    program's image n and the first row and column of its tile."""
    pid_tile = tl.program_id(0)
    tiles_h = tl.cdiv(ROWS, BLOCK_H)
    tiles_w = tl.cdiv(COLS, BLOCK_W)
    t = pid_tile % (tiles_h * tiles_w)
    return pid_tile // (tiles_h * tiles_w), (t // tiles_w) * BLOCK_H, (t % tiles_w) * BLOCK_W


@triton.jit
def _output_tile(OH, OW, C_out, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr):
    """This program's output tile: image n, BLOCK_H x BLOCK_W pixels (flattened; BLOCK_W is a
    power of two, so // and % are shifts) and BLOCK_C channels, with their masks. Grid:
    (N * tiles_h * tiles_w, channel blocks)."""
    n, oh0, ow0 = _tile_origin(OH, OW, BLOCK_H, BLOCK_W)
    hw = tl.arange(0, BLOCK_H * BLOCK_W)
    oh = oh0 + hw // BLOCK_W
    ow = ow0 + hw % BLOCK_W
    hw_mask = (oh < OH) & (ow < OW)
    co = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = co < C_out
    return n, oh, ow, hw_mask, co, c_mask


@triton.jit
def _tile_rows(OH, OW, C_out, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr):
    """`_output_tile` for the row-reuse path: image n, first output row oh0 (a scalar), the
    tile's BLOCK_W columns ow and their mask, and its channels. Same grid."""
    n, oh0, ow0 = _tile_origin(OH, OW, BLOCK_H, BLOCK_W)
    ow = ow0 + tl.arange(0, BLOCK_W)
    co = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    return n, oh0, ow, ow < OW, co, co < C_out


# Filters with more taps than this loop over their rows at run time (taps of a row unrolled);
# smaller ones unroll every tap. Fully unrolled, a 7x7 filter puts all 49 taps' loads in flight
# at once: ptxas then needs 255 registers and spills about 1 KB per thread (fp16, 16 outputs per
# thread; `tools/compile_kernels.py --regs`), where a 3x3 filter takes 128 registers and no spill.
MAX_UNROLLED_TAPS = tl.constexpr(9)


@triton.jit
def _conv_row(acc, x_base, w_ptr, kh, oh, ow, hw_mask, co, c_mask, H, W, sxh, sxw, swc, swh, sww,
              PAD_H, PAD_W, KW: tl.constexpr, STRIDE_H: tl.constexpr, STRIDE_W: tl.constexpr,
              DIL_H: tl.constexpr, DIL_W: tl.constexpr, ACC_DTYPE: tl.constexpr):
    """acc + the taps of filter row kh (a constant or a loop variable), taps of the row unrolled."""
    ih = oh * STRIDE_H - PAD_H + kh * DIL_H
    row_ok = hw_mask & (ih >= 0) & (ih < H)
    for kw in tl.static_range(KW):
        iw = ow * STRIDE_W - PAD_W + kw * DIL_W
        ok = row_ok & (iw >= 0) & (iw < W)
        xv = tl.load(x_base + ih[:, None] * sxh + iw[:, None] * sxw,
                     mask=ok[:, None] & c_mask[None, :], other=0.0)
        wv = tl.load(w_ptr + co * swc + kh * swh + kw * sww, mask=c_mask, other=0.0)
        acc += xv.to(ACC_DTYPE) * wv.to(ACC_DTYPE)[None, :]
    return acc


@triton.jit
def _conv_tile(x_ptr, w_ptr, n, oh, ow, hw_mask, co, c_mask, H, W, sxn, sxc, sxh, sxw, swc, swh, sww,
               PAD_H, PAD_W, KH: tl.constexpr, KW: tl.constexpr, STRIDE_H: tl.constexpr, STRIDE_W: tl.constexpr,
               DIL_H: tl.constexpr, DIL_W: tl.constexpr, MULT: tl.constexpr, ACC_DTYPE: tl.constexpr,
               BLOCK_HW: tl.constexpr, BLOCK_C: tl.constexpr):
    """The depthwise conv of one output tile, [BLOCK_HW, BLOCK_C] in ACC_DTYPE: each tap's
    BLOCK_C weights loaded once and reused by every pixel of the tile; rows unrolled up to
    MAX_UNROLLED_TAPS taps, a run-time loop over rows beyond."""
    x_base = x_ptr + n.to(tl.int64) * sxn + (co // MULT)[None, :] * sxc
    acc = tl.zeros((BLOCK_HW, BLOCK_C), dtype=ACC_DTYPE)
    if KH * KW <= MAX_UNROLLED_TAPS:
        for kh in tl.static_range(KH):
            acc = _conv_row(acc, x_base, w_ptr, kh, oh, ow, hw_mask, co, c_mask, H, W, sxh, sxw, swc, swh, sww,
                            PAD_H, PAD_W, KW, STRIDE_H, STRIDE_W, DIL_H, DIL_W, ACC_DTYPE)
    else:
        for kh in range(KH):
            acc = _conv_row(acc, x_base, w_ptr, kh, oh, ow, hw_mask, co, c_mask, H, W, sxh, sxw, swc, swh, sww,
                            PAD_H, PAD_W, KW, STRIDE_H, STRIDE_W, DIL_H, DIL_W, ACC_DTYPE)
    return acc


@triton.jit
def _conv_rows(x_base, w_ptr, oh0, ow, ow_ok, co, c_mask, H, W, sxh, sxw, swc, swh, sww, PAD_H, PAD_W,
               KH: tl.constexpr, KW: tl.constexpr, STRIDE_H: tl.constexpr, STRIDE_W: tl.constexpr,
               DIL_H: tl.constexpr, DIL_W: tl.constexpr, ACC_DTYPE: tl.constexpr, ROWS: tl.constexpr,
               BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr):
    """The conv of ROWS (2 or 4) consecutive output rows oh0.. of a tile, one [BLOCK_W, BLOCK_C]
    accumulator per row (unused ones stay zero), with each input row loaded once per filter
    column and used by every output row it reaches: (ROWS-1)*STRIDE_H + (KH-1)*DIL_H + 1 rows
    times KW loads for the ROWS rows, instead of KH*KW loads per output row (7x7, 4 rows: 70
    loads and conversions instead of 196). Which (row, tap) pairs meet is decided at compile
    time; the filter columns are a run-time loop, so that only one column's row loads are in
    flight (fully unrolled, ptxas needed 255 registers and spilled for 7x7)."""
    a0 = tl.zeros((BLOCK_W, BLOCK_C), dtype=ACC_DTYPE)
    a1 = tl.zeros((BLOCK_W, BLOCK_C), dtype=ACC_DTYPE)
    a2 = tl.zeros((BLOCK_W, BLOCK_C), dtype=ACC_DTYPE)
    a3 = tl.zeros((BLOCK_W, BLOCK_C), dtype=ACC_DTYPE)
    ih0 = oh0 * STRIDE_H - PAD_H
    for kw in range(KW):  # a run-time loop: only one filter column's row loads are in flight
        iw = ow * STRIDE_W - PAD_W + kw * DIL_W
        col_ok = ow_ok & (iw >= 0) & (iw < W)
        for r in tl.static_range((ROWS - 1) * STRIDE_H + (KH - 1) * DIL_H + 1):
            ih = ih0 + r
            ok = col_ok & (ih >= 0) & (ih < H)
            xv = tl.load(x_base + ih * sxh + iw[:, None] * sxw, mask=ok[:, None] & c_mask[None, :],
                         other=0.0).to(ACC_DTYPE)
            for i in tl.static_range(ROWS):
                d = r - i * STRIDE_H  # input row r is filter row d / DIL_H of output row i, if whole
                if d >= 0:
                    if d % DIL_H == 0:
                        if d // DIL_H < KH:
                            wv = tl.load(w_ptr + co * swc + (d // DIL_H) * swh + kw * sww, mask=c_mask,
                                         other=0.0).to(ACC_DTYPE)[None, :]
                            if i == 0:
                                a0 += xv * wv
                            if i == 1:
                                a1 += xv * wv
                            if i == 2:
                                a2 += xv * wv
                            if i == 3:
                                a3 += xv * wv
    return a0, a1, a2, a3


@triton.jit
def _row_pixels(row, ow, ow_ok, c_mask, OH):
    """Output row `row` of a row-reuse tile as pixel vectors over its columns, (oh, ow), and the
    mask of its [BLOCK_W, BLOCK_C] block."""
    oh = ow * 0 + row
    return oh, (ow_ok & (oh < OH))[:, None] & c_mask[None, :]


@triton.jit
def _row_of(a0, a1, a2, a3, i: tl.constexpr):
    """Accumulator i of `_conv_rows`' four (Triton has no indexable register arrays)."""
    acc = a0
    if i == 1:
        acc = a1
    if i == 2:
        acc = a2
    if i == 3:
        acc = a3
    return acc


@triton.jit
def _epilogue_store(acc, n, oh, ow, co, c_mask, out_mask, scale_ptr, shift_ptr, res_ptr, out_ptr, srn, src, srh,
                    srw, son, soc, soh, sow, HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr,
                    HAS_RES: tl.constexpr, ACT: tl.constexpr, ACC_DTYPE: tl.constexpr):
    """The forward's epilogue on the accumulator, act(acc * scale + shift + residual), stored
    at pixels (oh, ow) (vectors, one per accumulator row) in the output's dtype."""
    z = _affine_residual(acc, scale_ptr, shift_ptr, res_ptr, n, oh, ow, co, c_mask, out_mask, srn, src, srh, srw,
                         HAS_SCALE, HAS_SHIFT, HAS_RES, ACC_DTYPE)
    y = apply_activation(z, ACT)
    o_ptrs = out_ptr + n.to(tl.int64) * son + co[None, :] * soc + oh[:, None] * soh + ow[:, None] * sow
    tl.store(o_ptrs, y.to(out_ptr.dtype.element_ty), mask=out_mask)


@autotune(configs=depthwise_configs(), key=["C_out", "OH", "OW"])  # + every constexpr but the tile
@triton.jit
def depthwise_conv2d_kernel(
    # pointers (scale/shift/res may be dummies when the HAS_* flag is off)
    x_ptr, w_ptr, scale_ptr, shift_ptr, res_ptr, out_ptr,
    # sizes
    H, W, C_out, OH, OW,
    # strides, in elements: x and residual/out as (n, c, h, w), weight as (c_out, h, w)
    sxn, sxc, sxh, sxw,
    swc, swh, sww,
    srn, src, srh, srw,
    son, soc, soh, sow,
    # geometry: padding is a runtime value
    PAD_H, PAD_W,
    KH: tl.constexpr, KW: tl.constexpr,
    STRIDE_H: tl.constexpr, STRIDE_W: tl.constexpr,
    DIL_H: tl.constexpr, DIL_W: tl.constexpr,
    MULT: tl.constexpr,  # output channels per input channel
    CHANNELS_LAST: tl.constexpr,  # only an autotune key: the best tile depends on layout
    # epilogue
    HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, HAS_RES: tl.constexpr,
    ACT: tl.constexpr,
    ALIGN: tl.constexpr,  # every pixel and tap stride is a multiple of this (`stride_align`)
    ROW_REUSE: tl.constexpr,  # the row-reuse path for large filters (`forward_path_for`)
    ACC_DTYPE: tl.constexpr,  # fp32, or fp64 for fp64 inputs
    TUNING: tl.constexpr,  # only an autotune key: the policy's choices and the device (`tuning_tag`)
    # tiles
    BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr,
):
    sxn, sxh, sxw = _pixel_strides(sxn, sxh, sxw, ALIGN)
    swh, sww = _aligned(swh, ALIGN), _aligned(sww, ALIGN)
    srn, srh, srw = _pixel_strides(srn, srh, srw, ALIGN)
    son, soh, sow = _pixel_strides(son, soh, sow, ALIGN)
    C_out = _aligned(C_out, ALIGN)  # so that the channel mask is known constant over ALIGN lanes
    if ROW_REUSE:
        # large filters: input rows reused across the tile's output rows (`_conv_rows`)
        ROWS: tl.constexpr = 2 if BLOCK_H < 4 else 4
        n, oh0, ow, ow_ok, co, c_mask = _tile_rows(OH, OW, C_out, BLOCK_H, BLOCK_W, BLOCK_C)
        x_base = x_ptr + n.to(tl.int64) * sxn + (co // MULT)[None, :] * sxc
        for g in tl.static_range(BLOCK_H // ROWS):
            a0, a1, a2, a3 = _conv_rows(x_base, w_ptr, oh0 + g * ROWS, ow, ow_ok, co, c_mask, H, W, sxh, sxw,
                                        swc, swh, sww, PAD_H, PAD_W, KH, KW, STRIDE_H, STRIDE_W, DIL_H, DIL_W,
                                        ACC_DTYPE, ROWS, BLOCK_W, BLOCK_C)
            for i in tl.static_range(ROWS):
                oh, out_mask = _row_pixels(oh0 + g * ROWS + i, ow, ow_ok, c_mask, OH)
                _epilogue_store(_row_of(a0, a1, a2, a3, i), n, oh, ow, co, c_mask, out_mask, scale_ptr, shift_ptr, res_ptr, out_ptr,
                                srn, src, srh, srw, son, soc, soh, sow, HAS_SCALE, HAS_SHIFT, HAS_RES, ACT, ACC_DTYPE)
    else:
        n, oh, ow, hw_mask, co, c_mask = _output_tile(OH, OW, C_out, BLOCK_H, BLOCK_W, BLOCK_C)
        acc = _conv_tile(x_ptr, w_ptr, n, oh, ow, hw_mask, co, c_mask, H, W, sxn, sxc, sxh, sxw, swc, swh, sww,
                         PAD_H, PAD_W, KH, KW, STRIDE_H, STRIDE_W, DIL_H, DIL_W, MULT, ACC_DTYPE,
                         BLOCK_H * BLOCK_W, BLOCK_C)

        _epilogue_store(acc, n, oh, ow, co, c_mask, hw_mask[:, None] & c_mask[None, :], scale_ptr, shift_ptr,
                        res_ptr, out_ptr, srn, src, srh, srw, son, soc, soh, sow, HAS_SCALE, HAS_SHIFT, HAS_RES,
                        ACT, ACC_DTYPE)


@triton.jit
def _affine_residual(acc, scale_ptr, shift_ptr, res_ptr, n, oh, ow, co, c_mask, out_mask, srn, src, srh, srw,
                     HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, HAS_RES: tl.constexpr,
                     ACC_DTYPE: tl.constexpr):
    """z = acc * scale + shift + residual (each optional), in this order, in ACC_DTYPE."""
    if HAS_SCALE:
        acc = acc * tl.load(scale_ptr + co, mask=c_mask, other=0.0).to(ACC_DTYPE)[None, :]
    if HAS_SHIFT:
        acc = acc + tl.load(shift_ptr + co, mask=c_mask, other=0.0).to(ACC_DTYPE)[None, :]
    if HAS_RES:
        r_ptrs = res_ptr + n.to(tl.int64) * srn + co[None, :] * src + oh[:, None] * srh + ow[:, None] * srw
        acc = acc + tl.load(r_ptrs, mask=out_mask, other=0.0).to(ACC_DTYPE)
    return acc


# The epilogue backward's partial sums of d shift and d scale are per cell of SUM_H x SUM_W output
# pixels, not per program: the buffer's shape and the rows written then depend on the shapes alone,
# not on which config the autotuner (cnnc's or Inductor's) ran, so the launcher sums all of it.
# (Per program, as before, a config's rows had to be told apart from those other configs wrote while
# tuning: summing them all put d scale 70% off on an H100.) Every config's tile is a whole number of
# cells; the row-reuse path's groups of 4 output rows are one row of cells. Cost: one fp32 row per 32
# pixels per channel, 1/16 of the fp16 output gradient's bytes per wanted sum, where a 4x8 tile wrote
# as many and a larger tile fewer.
SUM_H, SUM_W = 4, 8


def epilogue_sum_cells(N, OH, OW) -> int:
    """Rows of the epilogue backward's partial-sum buffers: SUM_H x SUM_W pixel cells of the output."""
    return N * cdiv(OH, SUM_H) * cdiv(OW, SUM_W)


def epilogue_grad_configs():
    """The forward's tiles that are whole numbers of partial-sum cells (`SUM_H`, `SUM_W`)."""
    configs = [c for c in depthwise_configs() if c.kwargs["BLOCK_H"] % SUM_H == 0 and c.kwargs["BLOCK_W"] % SUM_W == 0]
    assert configs, "no forward tile is a whole number of partial-sum cells"
    return configs


@autotune(configs=epilogue_grad_configs(), key=["C_out", "OH", "OW"])  # + every constexpr but the tile
@triton.jit
def depthwise_epilogue_grad_kernel(
    # pointers (scale/shift/res/dres/sums may be dummies when their flag is off)
    x_ptr, w_ptr, scale_ptr, shift_ptr, res_ptr, gy_ptr, dc_ptr, dres_ptr, dshift_ptr, dscale_ptr,
    # sizes
    H, W, C_out, OH, OW,
    # strides, in elements: x, residual, grad_y, dc, dres as (n, c, h, w), weight as (c_out, h, w)
    sxn, sxc, sxh, sxw,
    swc, swh, sww,
    srn, src, srh, srw,
    sgn, sgc, sgh, sgw,
    sdn, sdc, sdh, sdw,
    sen, sec, seh, sew,
    PAD_H, PAD_W,
    KH: tl.constexpr, KW: tl.constexpr,
    STRIDE_H: tl.constexpr, STRIDE_W: tl.constexpr,
    DIL_H: tl.constexpr, DIL_W: tl.constexpr,
    MULT: tl.constexpr,
    CHANNELS_LAST: tl.constexpr,  # only an autotune key
    HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, HAS_RES: tl.constexpr,
    ACT: tl.constexpr,
    WANT_DRES: tl.constexpr, WANT_DSHIFT: tl.constexpr, WANT_DSCALE: tl.constexpr,
    ALIGN: tl.constexpr,
    ROW_REUSE: tl.constexpr,  # as in the forward (`forward_path_for`)
    ACC_DTYPE: tl.constexpr,
    TUNING: tl.constexpr,  # only an autotune key (`tuning_tag`)
    SUM_H: tl.constexpr, SUM_W: tl.constexpr,  # the partial sums' cell of pixels (`epilogue_sum_cells`)
    BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """The backward of the epilogue, in one pass over the output gradient.

    Recomputes the conv c of its tile (the forward's own loop, per tap or with row reuse as
    ROW_REUSE says: x is read about once, like the forward) and z = c * scale + shift + residual, then dz = grad_y * act'(z) and
    writes dc = dz * scale (x's dtype; the conv's output gradient, for the input- and
    weight-gradient kernels), optionally d residual = dz, and partial sums of dz (-> d shift)
    and dz * c (-> d scale) per cell of SUM_H x SUM_W output pixels into [cells, C_out]
    buffers that the launcher reduces (no atomics). The cells, unlike the programs, do not
    depend on the tile the autotuner picked (every tile is a whole number of cells): the
    buffers' shape and the rows written are a function of the shapes alone.
    """
    sxn, sxh, sxw = _pixel_strides(sxn, sxh, sxw, ALIGN)
    swh, sww = _aligned(swh, ALIGN), _aligned(sww, ALIGN)
    srn, srh, srw = _pixel_strides(srn, srh, srw, ALIGN)
    sgn, sgh, sgw = _pixel_strides(sgn, sgh, sgw, ALIGN)
    sdn, sdh, sdw = _pixel_strides(sdn, sdh, sdw, ALIGN)
    sen, seh, sew = _pixel_strides(sen, seh, sew, ALIGN)
    C_out = _aligned(C_out, ALIGN)
    # this program's tile in partial-sum cells (`epilogue_sum_cells`): the first cell row and
    # column, and how many cells there are per image
    n0, oh0_, ow0_ = _tile_origin(OH, OW, BLOCK_H, BLOCK_W)
    cells_h, cells_w = tl.cdiv(OH, SUM_H), tl.cdiv(OW, SUM_W)
    cell_w = ow0_ // SUM_W + tl.arange(0, BLOCK_W // SUM_W)
    if ROW_REUSE:  # large filters: the forward's row-reuse loop (`_conv_rows`) recomputes c
        ROWS: tl.constexpr = SUM_H  # one group of output rows is one row of cells
        n, oh0, ow, ow_ok, co, c_mask = _tile_rows(OH, OW, C_out, BLOCK_H, BLOCK_W, BLOCK_C)
        x_base = x_ptr + n.to(tl.int64) * sxn + (co // MULT)[None, :] * sxc
        for g in tl.static_range(BLOCK_H // ROWS):
            a0, a1, a2, a3 = _conv_rows(x_base, w_ptr, oh0 + g * ROWS, ow, ow_ok, co, c_mask, H, W, sxh, sxw,
                                        swc, swh, sww, PAD_H, PAD_W, KH, KW, STRIDE_H, STRIDE_W, DIL_H, DIL_W,
                                        ACC_DTYPE, ROWS, BLOCK_W, BLOCK_C)
            # dz and dz * c summed over the group's rows elementwise, then over each cell's columns
            rows_dz = tl.zeros((BLOCK_W, BLOCK_C), dtype=ACC_DTYPE)
            rows_dzc = tl.zeros((BLOCK_W, BLOCK_C), dtype=ACC_DTYPE)
            for i in tl.static_range(ROWS):
                oh, out_mask = _row_pixels(oh0 + g * ROWS + i, ow, ow_ok, c_mask, OH)
                dz, dzc = _epilogue_grad_tile(
                    _row_of(a0, a1, a2, a3, i), n, oh, ow, co, c_mask, out_mask, scale_ptr, shift_ptr, res_ptr,
                    gy_ptr, dc_ptr, dres_ptr, srn, src, srh, srw, sgn, sgc, sgh, sgw, sdn, sdc, sdh, sdw,
                    sen, sec, seh, sew, HAS_SCALE, HAS_SHIFT, HAS_RES, ACT, WANT_DRES, WANT_DSCALE, ACC_DTYPE)
                rows_dz += dz
                rows_dzc += dzc
            cell_h = (oh0 + g * ROWS) // SUM_H + tl.zeros((1,), dtype=tl.int32)
            _store_cell_sums(tl.sum(tl.reshape(rows_dz, (BLOCK_W // SUM_W, SUM_W, BLOCK_C)), axis=1),
                             tl.sum(tl.reshape(rows_dzc, (BLOCK_W // SUM_W, SUM_W, BLOCK_C)), axis=1),
                             dshift_ptr, dscale_ptr, n, cell_h, cell_w, cells_h, cells_w, co, c_mask, C_out,
                             WANT_DSHIFT, WANT_DSCALE, 1, BLOCK_W // SUM_W, BLOCK_C)
    else:
        n, oh, ow, hw_mask, co, c_mask = _output_tile(OH, OW, C_out, BLOCK_H, BLOCK_W, BLOCK_C)
        c = _conv_tile(x_ptr, w_ptr, n, oh, ow, hw_mask, co, c_mask, H, W, sxn, sxc, sxh, sxw, swc, swh, sww,
                       PAD_H, PAD_W, KH, KW, STRIDE_H, STRIDE_W, DIL_H, DIL_W, MULT, ACC_DTYPE,
                       BLOCK_H * BLOCK_W, BLOCK_C)
        dz, dzc = _epilogue_grad_tile(
            c, n, oh, ow, co, c_mask, hw_mask[:, None] & c_mask[None, :], scale_ptr, shift_ptr, res_ptr, gy_ptr,
            dc_ptr, dres_ptr, srn, src, srh, srw, sgn, sgc, sgh, sgw, sdn, sdc, sdh, sdw, sen, sec, seh, sew,
            HAS_SCALE, HAS_SHIFT, HAS_RES, ACT, WANT_DRES, WANT_DSCALE, ACC_DTYPE)
        # [BLOCK_H * BLOCK_W, C] pixels (row-major) as [cell rows, SUM_H, cell columns, SUM_W, C], summed per cell
        sum_dz = tl.sum(tl.sum(tl.reshape(dz, (BLOCK_H // SUM_H, SUM_H, BLOCK_W // SUM_W, SUM_W, BLOCK_C)), axis=3),
                        axis=1)
        sum_dzc = tl.sum(tl.sum(tl.reshape(dzc, (BLOCK_H // SUM_H, SUM_H, BLOCK_W // SUM_W, SUM_W, BLOCK_C)), axis=3),
                         axis=1)
        cell_h = oh0_ // SUM_H + tl.arange(0, BLOCK_H // SUM_H)
        _store_cell_sums(sum_dz, sum_dzc, dshift_ptr, dscale_ptr, n, cell_h, cell_w, cells_h, cells_w, co, c_mask,
                         C_out, WANT_DSHIFT, WANT_DSCALE, BLOCK_H // SUM_H, BLOCK_W // SUM_W, BLOCK_C)


@triton.jit
def _store_cell_sums(sum_dz, sum_dzc, dshift_ptr, dscale_ptr, n, cell_h, cell_w, cells_h, cells_w, co, c_mask,
                     C_out, WANT_DSHIFT: tl.constexpr, WANT_DSCALE: tl.constexpr, CH: tl.constexpr,
                     CW: tl.constexpr, BLOCK_C: tl.constexpr):
    """Store a [CH, CW, BLOCK_C] block of per-cell partial sums of dz and dz * c at their rows
    ((n * cells_h + cell_h) * cells_w + cell_w) of the [rows, C_out] buffers; cells past the
    image's edge (a tile sticking out of it) are not stored."""
    row = (n * cells_h + cell_h[:, None]) * cells_w + cell_w[None, :]
    ok = ((cell_h[:, None] < cells_h) & (cell_w[None, :] < cells_w))[:, :, None] & c_mask[None, None, :]
    at = row[:, :, None].to(tl.int64) * C_out + co[None, None, :]
    if WANT_DSHIFT:
        tl.store(dshift_ptr + at, tl.reshape(sum_dz, (CH, CW, BLOCK_C)), mask=ok)
    if WANT_DSCALE:
        tl.store(dscale_ptr + at, tl.reshape(sum_dzc, (CH, CW, BLOCK_C)), mask=ok)


@triton.jit
def _epilogue_grad_tile(c, n, oh, ow, co, c_mask, out_mask, scale_ptr, shift_ptr, res_ptr, gy_ptr, dc_ptr, dres_ptr,
                        srn, src, srh, srw, sgn, sgc, sgh, sgw, sdn, sdc, sdh, sdw, sen, sec, seh, sew,
                        HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, HAS_RES: tl.constexpr, ACT: tl.constexpr,
                        WANT_DRES: tl.constexpr, WANT_DSCALE: tl.constexpr, ACC_DTYPE: tl.constexpr):
    """The epilogue backward at pixels (oh, ow) (vectors, one per row of c) given the conv c
    there: stores dc (and d residual), returns dz and dz * c (zeros when d scale is not
    wanted), for the caller's sums over pixels."""
    z = _affine_residual(c, scale_ptr, shift_ptr, res_ptr, n, oh, ow, co, c_mask, out_mask, srn, src, srh, srw,
                         HAS_SCALE, HAS_SHIFT, HAS_RES, ACC_DTYPE)
    n64 = n.to(tl.int64)
    g = tl.load(gy_ptr + n64 * sgn + co[None, :] * sgc + oh[:, None] * sgh + ow[:, None] * sgw,
                mask=out_mask, other=0.0).to(ACC_DTYPE)
    dz = tl.where(out_mask, apply_activation_grad(g, z, ACT), 0.0)
    if WANT_DRES:
        tl.store(dres_ptr + n64 * sen + co[None, :] * sec + oh[:, None] * seh + ow[:, None] * sew,
                 dz.to(dres_ptr.dtype.element_ty), mask=out_mask)
    dzc = tl.zeros_like(dz)
    if WANT_DSCALE:
        dzc = dz * c
    dc = dz
    if HAS_SCALE:
        dc = dz * tl.load(scale_ptr + co, mask=c_mask, other=0.0).to(ACC_DTYPE)[None, :]
    tl.store(dc_ptr + n64 * sdn + co[None, :] * sdc + oh[:, None] * sdh + ow[:, None] * sdw,
             dc.to(dc_ptr.dtype.element_ty), mask=out_mask)
    return dz, dzc


@triton.jit
def _input_grad_row(acc, g_base, w_ptr, kh, oh, qw, in_mask, ci, c_mask, OH, OW, sgc, sgh, sgw, swc, swh, sww,
                    PAD_W: tl.constexpr, KW: tl.constexpr, DIL_W: tl.constexpr, MULT: tl.constexpr,
                    ACC_DTYPE: tl.constexpr):
    """acc + filter row kh's contributions to input pixels (oh + kh*DIL_H - PAD_H, qw) at stride 1."""
    row_ok = in_mask & (oh >= 0) & (oh < OH)
    for kw in tl.static_range(KW):
        ow = qw + PAD_W - kw * DIL_W
        ok = (row_ok & (ow >= 0) & (ow < OW))[:, None] & c_mask[None, :]
        for m in tl.static_range(MULT):
            co = ci * MULT + m
            gv = tl.load(g_base + co[None, :] * sgc + oh[:, None] * sgh + ow[:, None] * sgw, mask=ok, other=0.0)
            wv = tl.load(w_ptr + co * swc + kh * swh + kw * sww, mask=c_mask, other=0.0)
            acc += gv.to(ACC_DTYPE) * wv.to(ACC_DTYPE)[None, :]
    return acc


def input_grad_configs():
    """Autotune space for the input-gradient kernel. BLOCK_H x BLOCK_W counts phase
    positions: a program writes STRIDE_H*BLOCK_H x STRIDE_W*BLOCK_W input pixels. Same
    layout reasoning as `depthwise_configs`; one config under the interpreter."""
    if INTERPRET:
        return [triton.Config({"BLOCK_H": 8, "BLOCK_W": 8, "BLOCK_C": 16}, num_warps=4)]
    shapes = [
        # (BLOCK_H, BLOCK_W, BLOCK_C, num_warps)
        (4, 8, 64, 4),
        (8, 8, 32, 4),
        (2, 16, 64, 4),
        (4, 32, 16, 4),  # NCHW-friendly: long contiguous runs along W
    ]
    return [triton.Config({"BLOCK_H": bh, "BLOCK_W": bw, "BLOCK_C": bc}, num_warps=w, num_stages=1)
            for bh, bw, bc, w in shapes]


@autotune(configs=input_grad_configs(), key=["C_in", "H", "W"])  # + every constexpr but the tile
@triton.jit
def depthwise_input_grad_kernel(
    # pointers
    g_ptr, w_ptr, dx_ptr,
    # sizes: QH = cdiv(H, STRIDE_H), QW = cdiv(W, STRIDE_W) phase positions
    H, W, C_in, OH, OW, QH, QW,
    # strides, in elements: grad_out and dx as (n, c, h, w), weight as (c_out, h, w)
    sgn, sgc, sgh, sgw,
    swc, swh, sww,
    sxn, sxc, sxh, sxw,
    # geometry, all constexpr: which taps reach which stride phase is decided at compile time
    PAD_H: tl.constexpr, PAD_W: tl.constexpr,
    KH: tl.constexpr, KW: tl.constexpr,
    STRIDE_H: tl.constexpr, STRIDE_W: tl.constexpr,
    DIL_H: tl.constexpr, DIL_W: tl.constexpr,
    MULT: tl.constexpr,  # output channels per input channel
    CHANNELS_LAST: tl.constexpr,  # only an autotune key: the best tile depends on layout
    ALIGN: tl.constexpr,  # every pixel and tap stride is a multiple of this (`stride_align`)
    ACC_DTYPE: tl.constexpr,  # fp32, or fp64 for fp64 inputs
    TUNING: tl.constexpr,  # only an autotune key (`tuning_tag`)
    BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """dx[n, ci, ih, iw] = sum over m < MULT, kh, kw of
    grad_out[n, ci*MULT + m, oh, ow] * w[ci*MULT + m, 0, kh, kw], where
    oh = (ih + PAD_H - kh*DIL_H) / STRIDE_H is an exact integer in [0, OH) (same for ow).

    Gather form: every dx element is written exactly once by one program, no atomics.
    Input rows are split by phase, ih = qh*STRIDE_H + rh with 0 <= rh < STRIDE_H. For tap
    kh, ih + PAD_H - kh*DIL_H = qh*STRIDE_H + e with e = rh + PAD_H - kh*DIL_H, so the tap
    reaches phase rh iff STRIDE_H divides e, and then oh = qh + e // STRIDE_H. rh, kh and
    e are all constexpr: the divisibility test runs at compile time and each phase
    unrolls only its own taps (each tap lands in exactly one phase per axis), so no lane
    ever issues a load that the stride rules out. Stride 1 is one phase with every tap.
    A program covers BLOCK_H x BLOCK_W phase positions (qh, qw) of one image and BLOCK_C
    input channels, and writes all STRIDE_H*STRIDE_W phases of them, one after the other;
    phases with no tap (e.g. dilation 2 with stride 2) store zeros.
    """
    sgn, sgh, sgw = _pixel_strides(sgn, sgh, sgw, ALIGN)
    swh, sww = _aligned(swh, ALIGN), _aligned(sww, ALIGN)
    sxn, sxh, sxw = _pixel_strides(sxn, sxh, sxw, ALIGN)
    C_in = _aligned(C_in, ALIGN)
    n, qh0, qw0 = _tile_origin(QH, QW, BLOCK_H, BLOCK_W)  # tiles over the (QH, QW) phase positions
    hw = tl.arange(0, BLOCK_H * BLOCK_W)
    qh = qh0 + hw // BLOCK_W
    qw = qw0 + hw % BLOCK_W

    ci = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = ci < C_in

    n64 = n.to(tl.int64)
    g_base = g_ptr + n64 * sgn
    for rh in tl.static_range(STRIDE_H):
        ih = qh * STRIDE_H + rh
        for rw in tl.static_range(STRIDE_W):
            iw = qw * STRIDE_W + rw
            in_mask = (ih < H) & (iw < W)
            acc = tl.zeros((BLOCK_H * BLOCK_W, BLOCK_C), dtype=ACC_DTYPE)
            if STRIDE_H * STRIDE_W == 1 and KH * KW > MAX_UNROLLED_TAPS:
                # stride 1: every tap reaches the one phase; rows in a run-time loop, as in the
                # forward, so a 7x7 filter does not keep 49 taps' loads in flight (spills)
                for kh in range(KH):
                    acc = _input_grad_row(acc, g_base, w_ptr, kh, qh + PAD_H - kh * DIL_H, qw, in_mask, ci, c_mask,
                                          OH, OW, sgc, sgh, sgw, swc, swh, sww, PAD_W, KW, DIL_W, MULT, ACC_DTYPE)
            else:
                for kh in tl.static_range(KH):
                    if (rh + PAD_H - kh * DIL_H) % STRIDE_H == 0:
                        oh = qh + (rh + PAD_H - kh * DIL_H) // STRIDE_H
                        row_ok = in_mask & (oh >= 0) & (oh < OH)
                        for kw in tl.static_range(KW):
                            if (rw + PAD_W - kw * DIL_W) % STRIDE_W == 0:
                                ow = qw + (rw + PAD_W - kw * DIL_W) // STRIDE_W
                                ok = (row_ok & (ow >= 0) & (ow < OW))[:, None] & c_mask[None, :]
                                for m in tl.static_range(MULT):
                                    co = ci * MULT + m
                                    gv = tl.load(g_base + co[None, :] * sgc + oh[:, None] * sgh + ow[:, None] * sgw,
                                                 mask=ok, other=0.0)
                                    wv = tl.load(w_ptr + co * swc + kh * swh + kw * sww, mask=c_mask, other=0.0)
                                    acc += gv.to(ACC_DTYPE) * wv.to(ACC_DTYPE)[None, :]
            dx_ptrs = dx_ptr + n64 * sxn + ci[None, :] * sxc + ih[:, None] * sxh + iw[:, None] * sxw
            tl.store(dx_ptrs, acc.to(dx_ptr.dtype.element_ty), mask=in_mask[:, None] & c_mask[None, :])


# The weight-gradient kernel's tile space: (TAP_BLOCK, BLOCK_P, BLOCK_C, num_warps). TAP_BLOCK is
# how many filter taps one program reduces for (1: one tap per program, the grid has a tap axis);
# BLOCK_P the output pixels per loop step. Each program holds a [TAP_BLOCK, BLOCK_P, BLOCK_C]
# accumulator, 16-64 fp32 values per thread here.
WGRAD_TILES = (
    (1, 64, 64, 4), (1, 128, 32, 4), (1, 32, 128, 4),  # one tap per program
    (16, 4, 32, 4), (16, 8, 64, 8), (32, 4, 32, 4), (32, 2, 64, 4), (64, 2, 32, 4),  # tap blocks
)
# Under the interpreter: one tile per mode (per-tap, tap blocks), so CI runs both code paths.
WGRAD_TILES_INTERPRETED = ((1, 32, 16, 4), (16, 4, 16, 4))


def weight_grad_configs():
    """Autotune space of the weight-gradient kernel: WGRAD_TILES, pruned per launch by
    `_weight_grad_prune`. Under the interpreter WGRAD_TILES_INTERPRETED."""
    tiles = WGRAD_TILES_INTERPRETED if INTERPRET else WGRAD_TILES
    return [triton.Config({"TAP_BLOCK": t, "BLOCK_P": p, "BLOCK_C": c}, num_warps=w, num_stages=2)
            for t, p, c, w in tiles]


# Filters from this many taps up prefer tap blocks when nothing is timed (the interpreter, a
# policy with autotune=false): one tap per program would read grad_out and x 25-49 times through L2.
WGRAD_TAP_BLOCKS_FROM = 25


def _weight_grad_prune(configs, named_args, **kwargs):
    """The configs a launch may choose from: those of its TAPS_MODE ("per-tap": TAP_BLOCK 1;
    "tap-blocks": TAP_BLOCK > 1; "auto": both), without tap blocks wider than the filter needs
    (16 taps at least), the preference where nothing is timed first: tap blocks from
    WGRAD_TAP_BLOCKS_FROM taps up, else one tap per program. The autotuner times them all; a
    launch that times nothing (policy autotune=false: `_runtime.untimed_config`) takes the
    first; under the interpreter only the first is kept."""
    taps = kwargs["KH"] * kwargs["KW"]
    mode = kwargs["TAPS_MODE"]
    kept = [c for c in configs
            if (mode != "per-tap" or c.kwargs["TAP_BLOCK"] == 1)
            and (mode != "tap-blocks" or c.kwargs["TAP_BLOCK"] > 1)
            and c.kwargs["TAP_BLOCK"] <= max(16, next_power_of_2(taps))]
    if taps >= WGRAD_TAP_BLOCKS_FROM:  # stable: each kind keeps its order
        kept.sort(key=lambda c: c.kwargs["TAP_BLOCK"] == 1)
    return kept[:1] if INTERPRET else kept


@autotune(configs=weight_grad_configs(), key=["C_out", "N", "OH", "OW"],  # + every constexpr but the tile
          prune_configs_by={"early_config_prune": _weight_grad_prune})
@triton.jit
def depthwise_weight_grad_kernel(
    # pointers: partial is [programs along the pixels, KH*KW, C_out] fp32/fp64, summed over its
    # first axis by the launcher
    x_ptr, g_ptr, partial_ptr,
    # sizes (the reduction runs over the N * OH * OW output pixels)
    N, H, W, C_out, OH, OW,
    # what one program reduces over: IMAGES consecutive images, or (when IMAGES is 1) one of
    # OH_SLICES slices of SLICE_ROWS output rows of one image (`weight_grad_split`)
    IMAGES, OH_SLICES, SLICE_ROWS,
    # strides (elements), (n, c, h, w)
    sxn, sxc, sxh, sxw,
    sgn, sgc, sgh, sgw,
    # geometry
    PAD_H, PAD_W,
    KH: tl.constexpr, KW: tl.constexpr,
    STRIDE_H: tl.constexpr, STRIDE_W: tl.constexpr,
    DIL_H: tl.constexpr, DIL_W: tl.constexpr,
    MULT: tl.constexpr,
    ALIGN: tl.constexpr,  # every pixel stride is a multiple of this (`stride_align`)
    ACC_DTYPE: tl.constexpr,
    TAPS_MODE: tl.constexpr,  # which configs the launch may take (`_weight_grad_prune`); an autotune key
    OW_POW2: tl.constexpr,  # OW rounded up to a power of two (a step spans at most that many columns)
    TUNING: tl.constexpr,  # only an autotune key (`tuning_tag`)
    TAP_BLOCK: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """grad_w[co, kh, kw] = sum over (n, oh, ow) of grad_out[n, co, oh, ow] * x[n, co // MULT, ih, iw].

    One program per (block of TAP_BLOCK taps, block of BLOCK_C channels, share of the pixels:
    IMAGES whole images, or a slice of SLICE_ROWS output rows of one image). Each loop step
    takes BLOCK_P output pixels, COLS columns of BLOCK_P // COLS rows (COLS = BLOCK_P, or fewer
    on narrow maps: OW_POW2 is OW rounded up to a power of two), loads their [BLOCK_P, BLOCK_C]
    grad_out once and the [TAP_BLOCK, BLOCK_P, BLOCK_C] input values the block's taps pair with
    them (neighbouring taps read overlapping windows, served by L1), and adds the products into
    a [TAP_BLOCK, BLOCK_P, BLOCK_C] accumulator elementwise: no reduction and no select inside
    the loop, one sum over the pixels at the end. A pixel's row and column within the step are
    compile-time shifts and masks, the image changes only in the outermost loop, and the step's
    addresses are a scalar pointer plus offsets computed before the loop: no division inside it.

    TAP_BLOCK = 1 is one tap per program (grad_out and x then pass through L2 once per tap);
    larger blocks read grad_out once per block, at the price of the padding taps of the last
    block (49 taps fill 64). The autotuner picks. Deterministic, no atomics.
    """
    sxn, sxh, sxw = _pixel_strides(sxn, sxh, sxw, ALIGN)
    sgn, sgh, sgw = _pixel_strides(sgn, sgh, sgw, ALIGN)
    C_out = _aligned(C_out, ALIGN)
    COLS: tl.constexpr = min(BLOCK_P, OW_POW2)
    pid_t = tl.program_id(0)
    pid_c = tl.program_id(1)
    pid_m = tl.program_id(2)  # = image group * OH_SLICES + slice
    n_start = (pid_m // OH_SLICES) * IMAGES
    oh_start = (pid_m % OH_SLICES) * SLICE_ROWS
    oh_end = tl.minimum(oh_start + SLICE_ROWS, OH)

    t = pid_t * TAP_BLOCK + tl.arange(0, TAP_BLOCK)
    t_ok = t < KH * KW
    dh = (t // KW) * DIL_H - PAD_H  # input row of tap t, relative to oh * STRIDE_H
    dw = (t % KW) * DIL_W - PAD_W
    q = tl.arange(0, BLOCK_P)
    q_row = q // COLS  # pixel q of a step is at (oh0 + q_row, ow0 + q_col)
    q_col = q % COLS
    ih_step = (q_row * STRIDE_H)[None, :] + dh[:, None]  # [TAP_BLOCK, BLOCK_P], from oh0 * STRIDE_H
    iw_step = (q_col * STRIDE_W)[None, :] + dw[:, None]  # from ow0 * STRIDE_W
    co = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = co < C_out
    x_off = (ih_step * sxh + iw_step * sxw)[:, :, None] + ((co // MULT) * sxc)[None, None, :]
    g_off = (q_row * sgh + q_col * sgw)[:, None] + (co * sgc)[None, :]

    acc = tl.zeros((TAP_BLOCK, BLOCK_P, BLOCK_C), dtype=ACC_DTYPE)
    x_img = x_ptr + n_start.to(tl.int64) * sxn
    g_img = g_ptr + n_start.to(tl.int64) * sgn
    for n in range(n_start, tl.minimum(n_start + IMAGES, N)):
        for oh0 in range(oh_start, oh_end, BLOCK_P // COLS):
            q_in_rows = oh0 + q_row < oh_end
            ih = oh0 * STRIDE_H + ih_step
            rows_ok = t_ok[:, None] & q_in_rows[None, :] & (ih >= 0) & (ih < H)  # [TAP_BLOCK, BLOCK_P]
            x_rows = x_img + (oh0 * STRIDE_H) * sxh
            g_rows = g_img + oh0 * sgh
            for ow0 in range(0, OW, COLS):
                q_ok = q_in_rows & (ow0 + q_col < OW)
                gv = tl.load(g_rows + ow0 * sgw + g_off, mask=q_ok[:, None] & c_mask[None, :], other=0.0)
                iw = ow0 * STRIDE_W + iw_step
                ok = rows_ok & q_ok[None, :] & (iw >= 0) & (iw < W)
                xv = tl.load(x_rows + (ow0 * STRIDE_W) * sxw + x_off, mask=ok[:, :, None] & c_mask[None, None, :],
                             other=0.0)
                acc += xv.to(ACC_DTYPE) * gv.to(ACC_DTYPE)[None, :, :]
        x_img += sxn
        g_img += sgn

    total = tl.sum(acc, axis=1)  # [TAP_BLOCK, BLOCK_C]
    out = partial_ptr + (pid_m * KH * KW + t[:, None]) * C_out + co[None, :]
    tl.store(out, total, mask=t_ok[:, None] & c_mask[None, :])


# ---------------------------------------------------------------------------
# Launchers
# ---------------------------------------------------------------------------
def _acc_dtype(dtype):
    """`accumulator_dtype` as the kernels' ACC_DTYPE."""
    return tl.float64 if accumulator_dtype(dtype) == torch.float64 else tl.float32


def stride_align(*tensors, taps=(), channels=()) -> int:
    """ALIGN for a launch: the largest power of two up to 8 dividing every pixel (n, h, w)
    stride of `tensors` and every filter-tap stride in `taps`, or 1 when all of them are
    multiples of 16 (Triton's launcher then tells the compiler so itself, per argument).

    Why: channels_last with C not a multiple of 16 (Xception's 728) gives strides Triton
    does not mark as divisible by 16, so no address is known to be 16-byte aligned and every
    load is 2 bytes wide (PTX of the 3x3 fp16 forward at 728 channels: 153 two-byte loads;
    on an H100 that layer ran at 0.30x cuDNN, the worst of the list, 2026-11-23). The kernels
    re-derive each stride as stride // ALIGN * ALIGN, from which the compiler knows it."""
    strides = [s for t in tensors for s in (t.stride(0), t.stride(2), t.stride(3))] + list(taps) + list(channels)
    if all(s % 16 == 0 for s in strides):
        return 1
    align = 8
    while align > 1 and any(s % align for s in strides):
        align //= 2
    return align


def _tile_grid(N, rows, cols, channels):
    """Grid of the tiled kernels: (N * row tiles * column tiles, channel blocks) for a config."""
    return lambda meta: (N * cdiv(rows, meta["BLOCK_H"]) * cdiv(cols, meta["BLOCK_W"]),
                         cdiv(channels, meta["BLOCK_C"]))


def depthwise_conv2d(x, weight, stride, padding, dilation, scale=None, shift=None,
                     residual=None, activation=None, out=None, operand=None, policy=None, memo_key=None):
    """Launch the forward kernel. Arguments are already validated by `kernels.conv2d`:
    stride/padding/dilation are (h, w) pairs, weight is [C_out, 1, KH, KW] with
    C_out = MULT * C_in. `out`, if given, must have the output shape (any strides);
    `operand`, if given, is `weight_operand(weight, policy)` made earlier; `policy`: see
    `policy.resolve` (None: the default policy), as for every launcher here; `memo_key`, if
    given, determines every argument's shape, strides, dtype and device, the geometry, the
    activation and the policy (`conv2d._checked`), and keys the prepared launch in its place."""
    policy = resolve(policy)
    N, C_in, H, W = x.shape
    C_out, _, KH, KW = weight.shape
    OH, OW = output_hw(H, W, (KH, KW), stride, padding, dilation)
    if out is None:
        out = empty_output((N, C_out, OH, OW), x.dtype, x.device, output_memory_format(x))
    assert out.shape == (N, C_out, OH, OW), (out.shape, (N, C_out, OH, OW))
    w_arg, w_strides = operand or weight_operand(weight, policy)
    _launch_depthwise(x, w_arg, w_strides, KH, KW, out, padding, stride, dilation, C_out // C_in,
                      scale, shift, residual, activation, policy, memo_key if operand is None else None)
    return out


# Weight layout the depthwise kernels read. torch's [C_out, 1, KH, KW] puts a tap's BLOCK_C
# weights KH*KW elements apart, so each is a scalar load (the PTX of the 3x3 fp16 forward: 72
# two-byte weight loads per thread beside 22 sixteen-byte activation loads; 392 for 7x7). A
# tap-major copy [KH, KW, C_out] (C_out * KH * KW elements, one small copy kernel per call)
# makes them vector loads. The policy's dw_weights=as-is keeps torch's layout; which is faster,
# especially at batch 1 where the copy's launch counts, is NOT measured yet.
def weight_operand(weight, policy):
    """(tensor, its (channel, kh, kw) element strides): the kernels' weight argument under
    `policy` (dw_weights). The tap-major copy is made once per weight version
    (`_runtime.relayout`); a training step's backward reuses the forward's (`conv2d`'s eager
    path; the autograd context keeps the weight unchanged until then)."""
    C_out, _, KH, KW = weight.shape
    if policy.dw_weights == "as-is":
        return weight, (weight.stride(0), weight.stride(2), weight.stride(3))
    return relayout(weight, "tap-major", _tap_major), (1, KW * C_out, C_out)


def _tap_major(weight):
    """[C_out, 1, KH, KW] -> [KH, KW, C_out], contiguous: a tap's weights for consecutive channels adjacent."""
    return weight.reshape(weight.shape[0], -1).t().contiguous()


def _flipped(operand, KH, KW):
    """A `weight_operand` rotated 180 degrees, w[c, KH-1-kh, KW-1-kw], as the same memory read
    backwards: the pointer at the last tap and the tap strides negated (no copy)."""
    w_arg, strides = operand
    last = (KH - 1) * strides[1] + (KW - 1) * strides[2]
    w_arg = torch.as_strided(w_arg, (1,), (1,), w_arg.storage_offset() + last)  # its data_ptr is all a kernel reads
    return w_arg, (strides[0], -strides[1], -strides[2])


def forward_path_for(kh, kw, policy) -> str:
    """Which loop the depthwise forward runs, "rows" or "taps" (the policy's dw_forward: "rows",
    "taps" or "auto"). "taps": every tap a load, taps unrolled up to
    MAX_UNROLLED_TAPS and rows in a run-time loop beyond (`_conv_tile`). "rows": input rows
    shared by the tile's output rows (`_conv_rows`). auto takes "rows" above MAX_UNROLLED_TAPS
    taps (5x5, 7x7). Chosen from the PTX (7x7, 4x8x64 tile, fp16: 2.8x fewer bytes loaded
    and converted per thread, 109 registers, no spill), NOT timed on a GPU yet: the
    2026-11-23 H100 numbers are for "taps" (ConvNeXt 7x7 at 0.70x-0.81x cuDNN)."""
    mode = policy.dw_forward
    if mode == "auto":
        return "rows" if kh * kw > MAX_UNROLLED_TAPS.value else "taps"
    return mode


def _launch_depthwise(x, w_arg, w_strides, KH, KW, out, padding, stride, dilation, mult,
                      scale, shift, residual, activation, policy, memo_key=None):
    """The forward kernel on x with the filter operand (w_arg, w_strides) of `weight_operand`,
    writing `out`; padding may be negative (the input gradient's flipped forward)."""
    res = residual if residual is not None else out  # dummy pointer when unused
    tensors = (x, w_arg, scale if scale is not None else out, shift if shift is not None else out, res, out)
    key = memo_key or (x.shape, x.stride(), x.dtype, x.device, out.shape, out.stride(),
                       None if residual is None else res.stride(), w_strides, KH, KW, tuple(padding), tuple(stride),
                       tuple(dilation), mult, activation, policy, None if scale is None else scale.dtype,
                       None if shift is None else shift.dtype)

    def build():
        N, _, H, W = x.shape
        _, C_out, OH, OW = out.shape
        scalars = (H, W, C_out, OH, OW, *x.stride(), *w_strides, *res.stride(), *out.stride(), padding[0], padding[1])
        constexprs = dict(
            KH=KH, KW=KW, STRIDE_H=stride[0], STRIDE_W=stride[1], DIL_H=dilation[0], DIL_W=dilation[1],
            MULT=mult, CHANNELS_LAST=x.stride(1) == 1,
            HAS_SCALE=scale is not None, HAS_SHIFT=shift is not None, HAS_RES=residual is not None,
            ACT=ACT_CODES[activation], ALIGN=stride_align(x, res, out, taps=w_strides[1:], channels=(C_out,)),
            ROW_REUSE=forward_path_for(KH, KW, policy) == "rows", ACC_DTYPE=_acc_dtype(x.dtype))
        return _tile_grid(N, OH, OW, C_out), scalars, constexprs

    launch_prepared(_FORWARD_LAUNCHES, key, depthwise_conv2d_kernel, policy, tensors, build)


# The forward launches made ready per argument signature (`_runtime.launch_prepared`).
_FORWARD_LAUNCHES: dict = {}


def input_grad_path_for(kh, kw, stride, mult, policy) -> str:
    """How the depthwise input gradient runs, "gather" or "flipped" (the policy's dw_input_grad:
    "gather", "flipped" or "auto"). "gather": `depthwise_input_grad_kernel`, every stride and
    multiplier, taps one load each. "flipped": at stride 1 with multiplier 1 the input gradient
    is the forward conv of grad_out with the filter rotated 180 degrees (padding
    DIL*(K-1) - PAD), so the forward kernel runs it, with its row reuse for large filters;
    other strides and multipliers take "gather" whatever the setting. auto takes "flipped"
    where the forward takes its row-reuse path (`forward_path_for`: above 9 taps), "gather"
    elsewhere (there both loops are per tap). NOT timed on a GPU yet."""
    mode = policy.dw_input_grad
    if tuple(stride) != (1, 1) or mult != 1:
        return "gather"
    if mode == "auto":
        return "flipped" if forward_path_for(kh, kw, policy) == "rows" else "gather"
    return mode


def depthwise_conv2d_input_grad(grad_conv, weight, input_shape, stride, padding, dilation,
                                memory_format=torch.contiguous_format, operand=None, policy=None):
    """dL/dx [N, C_in, H, W] in `memory_format` from grad_conv [N, C_out, OH, OW], for any
    stride, padding, dilation and multiplier: `depthwise_input_grad_kernel`, or the forward
    kernel on the flipped filter (`input_grad_path_for`). Every element is written by the
    kernel, including rows/columns that no output reads (gradient 0)."""
    N, C_in, H, W = input_shape
    C_out, _, KH, KW = weight.shape
    OH, OW = grad_conv.shape[2], grad_conv.shape[3]
    (SH, SW), (PH, PW), (DH, DW) = stride, padding, dilation
    QH, QW = cdiv(H, SH), cdiv(W, SW)
    policy = resolve(policy)
    out = empty_output((N, C_in, H, W), grad_conv.dtype, grad_conv.device, memory_format)
    if input_grad_path_for(KH, KW, stride, C_out // C_in, policy) == "flipped":
        w_arg, w_strides = _flipped(operand or weight_operand(weight, policy), KH, KW)
        _launch_depthwise(grad_conv, w_arg, w_strides, KH, KW, out, (DH * (KH - 1) - PH, DW * (KW - 1) - PW),
                          (1, 1), dilation, 1, None, None, None, None, policy)
        return out
    w_arg, w_strides = operand or weight_operand(weight, policy)
    channels_last = memory_format == torch.channels_last
    launch(
        depthwise_input_grad_kernel, _tile_grid(N, QH, QW, C_in), policy,
        grad_conv, w_arg, out,
        H, W, C_in, OH, OW, QH, QW,
        *grad_conv.stride(),
        *w_strides,
        *out.stride(),
        PAD_H=PH, PAD_W=PW, KH=KH, KW=KW, STRIDE_H=SH, STRIDE_W=SW, DIL_H=DH, DIL_W=DW,
        MULT=C_out // C_in, CHANNELS_LAST=channels_last,
        ALIGN=stride_align(grad_conv, out, taps=w_strides[1:], channels=(C_in,)), ACC_DTYPE=_acc_dtype(grad_conv.dtype),
    )
    return out


def depthwise_epilogue_grad(x, weight, stride, padding, dilation, scale, shift, residual, grad_y, activation,
                            want_dres, want_dshift, want_dscale, operand=None, policy=None):
    """(dc, d residual, d shift, d scale) of y = act(conv(x) * scale + shift + residual) given
    dL/dy, in one pass (`depthwise_epilogue_grad_kernel`). dc, the conv output's gradient, is
    in x's dtype and layout; an unwanted result is an empty tensor. The partial sums are
    reduced here in fp32 (fp64 for fp64), deterministically."""
    policy = resolve(policy)
    N, C_in, H, W = x.shape
    C_out, _, KH, KW = weight.shape
    OH, OW = grad_y.shape[2], grad_y.shape[3]
    fmt = output_memory_format(x)
    dc = empty_output((N, C_out, OH, OW), x.dtype, x.device, fmt)
    dres = empty_output((N, C_out, OH, OW), residual.dtype, x.device, fmt) if want_dres else None
    # one row of partial sums per cell of SUM_H x SUM_W output pixels, whichever tile runs: every
    # row is written once by any config (`epilogue_sum_cells`)
    sums = empty_output((int(want_dshift) + int(want_dscale), epilogue_sum_cells(N, OH, OW), C_out),
                        accumulator_dtype(x.dtype), x.device)
    dshift_part = sums[0] if want_dshift else dc  # dc: a dummy pointer when unused
    dscale_part = sums[-1] if want_dscale else dc
    res = residual if residual is not None else dc
    dres_arg = dres if dres is not None else dc
    w_arg, w_strides = operand or weight_operand(weight, policy)
    channels_last, rows = x.stride(1) == 1, forward_path_for(KH, KW, policy) == "rows"
    launch(
        depthwise_epilogue_grad_kernel, _tile_grid(N, OH, OW, C_out), policy,
        x, w_arg, scale if scale is not None else dc, shift if shift is not None else dc, res, grad_y, dc,
        dres_arg, dshift_part, dscale_part,
        H, W, C_out, OH, OW,
        *x.stride(),
        *w_strides,
        *res.stride(), *grad_y.stride(), *dc.stride(), *dres_arg.stride(),
        padding[0], padding[1],
        KH=KH, KW=KW, STRIDE_H=stride[0], STRIDE_W=stride[1], DIL_H=dilation[0], DIL_W=dilation[1],
        MULT=C_out // C_in, CHANNELS_LAST=channels_last,
        HAS_SCALE=scale is not None, HAS_SHIFT=shift is not None, HAS_RES=residual is not None,
        ACT=ACT_CODES[activation], WANT_DRES=want_dres, WANT_DSHIFT=want_dshift, WANT_DSCALE=want_dscale,
        ALIGN=stride_align(x, res, grad_y, dc, dres_arg, taps=w_strides[1:], channels=(C_out,)),
        ROW_REUSE=rows, ACC_DTYPE=_acc_dtype(x.dtype), SUM_H=SUM_H, SUM_W=SUM_W,
    )
    dshift = sums[0].sum(0).to(shift.dtype) if want_dshift else x.new_empty(0)
    dscale = sums[-1].sum(0).to(scale.dtype) if want_dscale else x.new_empty(0)
    return dc, dres if dres is not None else x.new_empty(0), dshift, dscale


# Each program reduces over at least this many pixels per filter tap (16 x 49 = 784 for 7x7): its
# partial sums (taps x BLOCK_C fp32) then cost at most 1/16 of the bytes of grad_out and x it
# reads in fp16 (4 * taps bytes per channel written and read again, 4 per pixel read).
WGRAD_PIXELS_PER_TAP = 16


def weight_grad_split(N, OH, OW, C_out, taps) -> tuple[int, int, int]:
    """(images, slices per image, rows per slice) of one weight-gradient program's share of the
    pixels: about 2048 programs along the pixels and channels at one tap block of 32-channel
    blocks (fewer taps per program only add programs), but no fewer than
    WGRAD_PIXELS_PER_TAP * taps pixels per program. Several whole images per program where that
    many programs would be too many, slices of one image where there are fewer images than
    programs wanted. The same for every config, since the partial-sum buffer is allocated
    first. The interpreter splits as finely as it can (one image per program, 2 slices where
    OH allows) so CI covers the sum over programs and a slice shorter than the others."""
    if INTERPRET:
        wanted = N * min(2, OH)
    else:
        wanted = max(1, min(cdiv(2048, cdiv(C_out, 32)), N * OH * OW // (WGRAD_PIXELS_PER_TAP * taps)))
    if wanted <= N:
        images = cdiv(N, wanted)
        return images, 1, OH
    rows = cdiv(OH, min(OH, cdiv(wanted, N)))
    return 1, cdiv(OH, rows), rows


def depthwise_conv2d_weight_grad(x, grad_conv, weight_shape, stride, padding, dilation, policy=None):
    """Weight gradient [C_out, 1, KH, KW] in weight's dtype, reduced in fp32 (fp64 for fp64) by
    `depthwise_weight_grad_kernel` into [programs along the pixels, KH*KW, C_out] partial sums,
    then summed here (deterministic; no atomics). The tiles a launch may take are the policy's
    dw_wgrad: "per-tap" (one tap per program), "tap-blocks" (several taps per program) or "auto"
    (both, and the autotuner times them; see `_weight_grad_prune`)."""
    policy = resolve(policy)
    N, C_in, H, W = x.shape
    C_out, _, KH, KW = weight_shape
    OH, OW = grad_conv.shape[2], grad_conv.shape[3]
    images, slices, slice_rows = weight_grad_split(N, OH, OW, C_out, KH * KW)
    programs = cdiv(N, images) * slices  # along the pixels
    partial = torch.empty((programs, KH * KW, C_out), dtype=accumulator_dtype(x.dtype), device=x.device)
    grid = lambda m: (cdiv(KH * KW, m["TAP_BLOCK"]), cdiv(C_out, m["BLOCK_C"]), programs)  # noqa: E731
    launch(depthwise_weight_grad_kernel, grid, policy,
           x, grad_conv, partial, N, H, W, C_out, OH, OW, images, slices, slice_rows,
           *x.stride(), *grad_conv.stride(), padding[0], padding[1],
           KH=KH, KW=KW, STRIDE_H=stride[0], STRIDE_W=stride[1], DIL_H=dilation[0], DIL_W=dilation[1],
           MULT=C_out // C_in, ALIGN=stride_align(x, grad_conv, channels=(C_out,)),
           ACC_DTYPE=_acc_dtype(x.dtype), TAPS_MODE=policy.dw_wgrad, OW_POW2=next_power_of_2(OW))
    grad = torch.empty((C_out, 1, KH, KW), dtype=x.dtype, device=x.device)
    grad.view(C_out, KH * KW).t().copy_(partial.sum(0))  # transposed and cast in one copy
    return grad


# ---------------------------------------------------------------------------
# Reference
# ---------------------------------------------------------------------------
def depthwise_conv2d_reference(x, weight, stride, padding, dilation, scale=None, shift=None,
                               residual=None, activation=None):
    conv = F.conv2d(x, weight, None, stride, padding, dilation, groups=x.shape[1])
    return torch_epilogue(conv, scale, shift, residual, activation)
