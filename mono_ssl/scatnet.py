"""ScatNet: the 2-layer Morlet scattering transform (Mallat 2012; Oyallon et al.), in JAX.

The hand-designed baseline of the paper's tables. Each colour channel is
scattered separately with J scales and L orientations:

  S0 = x * phi_J                                   (1 map)
  S1 = |x * psi_{j1,t1}| * phi_J                   (J L maps)
  S2 = ||x * psi_{j1,t1}| * psi_{j2,t2}| * phi_J   (L^2 J (J - 1) / 2 maps, j2 > j1)

all subsampled by 2^J. The algorithm and the filter bank are kymatio's
(`Scattering2D`, whose JAX frontend does not import with current SciPy):
Morlet wavelets built in space and periodised, applied in the Fourier domain
on the reflect-padded image, each |.| computed at the coarsest resolution its
band allows (subsampling by 2^j1 after a wavelet of scale j1).

`ScatNet` reads like a trunk: `apply({}, x, train=..., head=False)` returns
`(None, {"conv1": S0 + S1, "conv2": S0 + S1 + S2})`, channels last, so the
linear probes of `mono_ssl.probe` treat its orders like conv layers.
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mono_ssl.errors import UserInputError

LAYERS = ("conv1", "conv2")  # the probe taps: orders <= 1 and orders <= 2
# Order-2 working set per lax.map step (see `scattering`): cache-sized on CPU,
# large on accelerators, where a long sequential map would idle the device.
_CHUNK_BYTES = {"cpu": 16 * 2**20}
_CHUNK_BYTES_ACCELERATOR = 512 * 2**20


def _gabor(m: int, n: int, sigma: float, theta: float, xi: float, slant: float = 1.0) -> np.ndarray:
  """A periodised 2-D Gabor filter of size (m, n), in space (kymatio's `gabor_2d`)."""
  rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
  curv = rot @ np.diag([1.0, slant * slant]) @ rot.T / (2 * sigma * sigma)
  out = np.zeros((m, n), np.complex128)
  for ex in range(-2, 3):  # periodise: the filter wraps around the padded image
    for ey in range(-2, 3):
      xx, yy = np.mgrid[ex * m:(ex + 1) * m, ey * n:(ey + 1) * n]
      arg = -(curv[0, 0] * xx * xx + (curv[0, 1] + curv[1, 0]) * xx * yy + curv[1, 1] * yy * yy)
      out += np.exp(arg + 1j * xi * (xx * np.cos(theta) + yy * np.sin(theta)))
  return out / (2 * np.pi * sigma * sigma / slant)


def _morlet(m: int, n: int, sigma: float, theta: float, xi: float, slant: float) -> np.ndarray:
  """A Gabor minus its envelope times the constant that makes its mean zero."""
  wave = _gabor(m, n, sigma, theta, xi, slant)
  envelope = _gabor(m, n, sigma, theta, 0.0, slant)
  return wave - wave.sum() / envelope.sum() * envelope


def _periodise(f_hat: np.ndarray, res: int) -> np.ndarray:
  """A Fourier-domain filter at 2^-res of its resolution: drop the bands that alias, fold the rest."""
  if res == 0:
    return f_hat
  m, n = f_hat.shape
  k = 2 ** res
  keep = np.ones_like(f_hat)
  keep[int(m / (2 * k)):int(m / (2 * k)) + int(m * (1 - 1 / k)), :] = 0
  keep[:, int(n / (2 * k)):int(n / (2 * k)) + int(n * (1 - 1 / k))] = 0
  return (f_hat * keep).reshape(k, m // k, k, n // k).sum(axis=(0, 2))


@functools.lru_cache(maxsize=16)
def filter_bank(m: int, n: int, J: int, L: int) -> dict:
  """Fourier-domain filters for an (m, n) padded image (m, n multiples of 2^J).

  psi[j][res]: (L, m / 2^res, n / 2^res) wavelets of scale j, for res <= j;
  phi[res]: (m / 2^res, n / 2^res) low-pass at scale J. All real: the filters
  are Hermitian-symmetric in space, so their transforms have no imaginary part.
  """
  psi = []
  for j in range(J):
    hats = np.stack([np.real(np.fft.fft2(_morlet(m, n, 0.8 * 2**j, (L - L // 2 - 1 - t) * np.pi / L,
                                                 3.0 / 4.0 * np.pi / 2**j, 4.0 / L)))
                     for t in range(L)])
    psi.append([np.stack([_periodise(h, r) for h in hats]).astype(np.float32) for r in range(j + 1)])
  phi_hat = np.real(np.fft.fft2(_gabor(m, n, 0.8 * 2 ** (J - 1), 0.0, 0.0)))
  phi = [_periodise(phi_hat, r).astype(np.float32) for r in range(J + 1)]
  return {"psi": psi, "phi": phi}


def spatial_wavelets(J: int = 2, L: int = 8, size: int | None = None) -> np.ndarray:
  """Real parts of the first-order wavelets in space, (J * L, size, size): ScatNet's 'conv1 filters'.

  The default size, 4 * 2^J + 1, holds the widest wavelet's envelope.
  """
  size = size or 4 * 2**J + 1
  out = []
  for j in range(J):
    for t in range(L):
      w = _morlet(size, size, 0.8 * 2**j, (L - L // 2 - 1 - t) * np.pi / L, 3.0 / 4.0 * np.pi / 2**j, 4.0 / L)
      out.append(np.real(np.fft.fftshift(w)))
  return np.stack(out)


def _subsample(x_hat: jax.Array, k: int) -> jax.Array:
  """Fourier transform of x[::k, ::k] from that of x: average the k x k aliases."""
  if k == 1:
    return x_hat
  *lead, m, n = x_hat.shape
  return x_hat.reshape(*lead, k, m // k, k, n // k).mean(axis=(-4, -2))


def _modulus(z: jax.Array) -> jax.Array:
  # |z| without jnp.abs's overflow-safe hypot, which measured 3x slower here.
  return jnp.sqrt(jnp.real(z) ** 2 + jnp.imag(z) ** 2)


@functools.lru_cache(maxsize=16)
def lowpass_matrices(m: int, n: int, J: int, res: int, out_h: int, out_w: int):
  """(A, B) with A @ u @ B.T = the low-pass of a real map u at resolution 2^-res,
  subsampled to 2^-J and cropped of its padding: (out_h, m_r) and (out_w, n_r).

  phi is a periodised isotropic Gaussian, so its kernel at every resolution
  is rank one (a column times a row): filtering, subsampling and cropping are
  then two small matrix products instead of an FFT and an inverse FFT.
  """
  phi_hat = filter_bank(m, n, J, 1)["phi"][res]
  kernel = np.real(np.fft.ifft2(phi_hat.astype(np.float64)))
  u, sv, vt = np.linalg.svd(kernel)
  col, row = u[:, 0] * np.sqrt(sv[0]), vt[0] * np.sqrt(sv[0])
  k = 2 ** (J - res)

  def circulant_rows(v: np.ndarray, count: int) -> np.ndarray:
    size = len(v)
    # Output position k (i + 1): the first 2^-J sample after the padding.
    return np.stack([v[(k * (i + 1) - np.arange(size)) % size] for i in range(count)])

  return (circulant_rows(col, out_h).astype(np.float32), circulant_rows(row, out_w).astype(np.float32))


def _scatter_maps(x: jax.Array, J: int, L: int, out_h: int, out_w: int) -> jax.Array:
  """Scattering of padded real maps (N, m, n) -> (N, K, out_h, out_w), K = 1 + JL + L^2 J(J-1)/2."""
  nmaps, m, n = x.shape
  bank = filter_bank(m, n, J, L)
  psi = [[jnp.asarray(f) for f in levels] for levels in bank["psi"]]
  lowpass = [tuple(jnp.asarray(a) for a in lowpass_matrices(m, n, J, r, out_h, out_w))
             for r in range(J + 1)]

  def finish(u: jax.Array, res: int) -> jax.Array:
    a, b = lowpass[res]
    return jnp.einsum("ip,...pq,jq->...ij", a, u, b)

  x_hat = jnp.fft.fft2(x)
  parts = [finish(x, 0)[:, None]]                                          # S0
  second = []
  for j1 in range(J):
    u1 = _modulus(jnp.fft.ifft2(_subsample(x_hat[:, None] * psi[j1][0], 2**j1)))  # (N, L, ., .)
    parts.append(finish(u1, j1))                                            # S1
    if j1 == J - 1:
      continue
    u1_hat = jnp.fft.fft2(u1)
    per_j2 = [finish(_modulus(jnp.fft.ifft2(_subsample(u1_hat[:, :, None] * psi[j2][j1],
                                                       2 ** (j2 - j1)))), j2)
              for j2 in range(j1 + 1, J)]                                   # (N, L, L, h', w') each
    # kymatio's order: (j1, theta1) outer, (j2, theta2) inner.
    second.append(jnp.concatenate(per_j2, axis=2).reshape(nmaps, -1, out_h, out_w))
  return jnp.concatenate(parts + second, axis=1)


def scattering(x: jax.Array, J: int = 2, L: int = 8, chunk: int | None = None
               ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(S0, S1, S2) of float images (B, H, W, C); each (B, ceil(H / 2^J), ceil(W / 2^J), C * K_order).

  Channels are colour-major: the K_order maps of channel 0, then channel 1, ...
  (S1: j1, theta1; S2: j1, theta1, j2, theta2 with j2 > j1). `chunk` maps
  (image x colour) are transformed at a time, by default as many as keep the
  order-2 intermediates near 16 MB on CPU (a whole batch's are hundreds of
  MB; staying in cache measured 2-4x faster) or 512 MB on an accelerator.
  Matches kymatio's
  Scattering2D (to float32 rounding) when H and W are multiples of 2^J.
  """
  b, h, w, c = x.shape
  k = 2**J
  if k >= min(h, w):
    raise UserInputError(f"scatnet.J={J} needs images larger than 2^J = {k} px, got {h}x{w}; "
                         "lower scatnet.J.")
  out_h, out_w = -(-h // k), -(-w // k)
  # Reflect-pad by 2^J on each side (plus up to a multiple of 2^J): the
  # periodic FFT then wraps onto mirrored borders, not the opposite edge.
  maps = jnp.moveaxis(x.astype(jnp.float32), -1, 1).reshape(b * c, h, w)
  maps = jnp.pad(maps, ((0, 0), (k, k + out_h * k - h), (k, k + out_w * k - w)), mode="reflect")
  nmaps = b * c
  if chunk is None:
    budget = _CHUNK_BYTES.get(jax.default_backend(), _CHUNK_BYTES_ACCELERATOR)
    chunk = budget // (L * L * maps.shape[1] * maps.shape[2] * 8)
  chunk = max(1, min(chunk, nmaps))
  pad = -nmaps % chunk
  maps = jnp.pad(maps, ((0, pad), (0, 0), (0, 0)))
  out = jax.lax.map(lambda m: _scatter_maps(m, J, L, out_h, out_w),
                    maps.reshape(-1, chunk, *maps.shape[1:]))
  out = out.reshape(-1, *out.shape[2:])[:nmaps].reshape(b, c, -1, out_h, out_w)
  n0, n1, _ = num_coefficients(J, L)
  orders = (out[:, :, :n0], out[:, :, n0:n0 + n1], out[:, :, n0 + n1:])
  return tuple(jnp.moveaxis(o.reshape(b, -1, out_h, out_w), 1, -1) for o in orders)


def num_coefficients(J: int, L: int) -> tuple[int, int, int]:
  """Maps per colour channel of orders 0, 1 and 2."""
  return 1, J * L, L * L * J * (J - 1) // 2


class ScatNet(nn.Module):
  """The scattering transform as a parameter-free trunk: `(None, {"conv1": S<=1, "conv2": S<=2})`.

  `train` and `head` are accepted for the trunk interface and ignored (nothing
  to train, no classifier).
  """
  J: int = 2
  L: int = 8

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False, head: bool = False):
    del train, head
    s0, s1, s2 = scattering(x, self.J, self.L)
    first = jnp.concatenate([s0, s1], axis=-1)
    return None, dict(zip(LAYERS, (first, jnp.concatenate([first, s2], axis=-1))))
