"""Image and caption metrics.

- :func:`ssim`: structural similarity (Wang et al. 2004), differentiable, in torch. The paper
  reports it between the original scene and what a privacy camera records (Eq. 2's output;
  Fig. 2 insets, "average SSIM of 0.48") and between the scene and deconvolution attacks'
  reconstructions (Fig. 3).
- :func:`psnr`: peak signal-to-noise ratio of each image, the second image score of the
  deconvolution attacks (:mod:`privcap.attacks`).
- :func:`score_captions` / :func:`caption_scores`: the COCO caption metrics of Table 1
  (BLEU-1..4, METEOR, CIDEr; plus ROUGE-L), corpus-level and per image (Fig. 2 insets show
  per-image METEOR), computed by pycocoevalcap 1.2's own scorers after its PTB tokenisation
  (DESIGN sec. 7), with the traps of calling it directly removed.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import unicodedata
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

# --------------------------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------------------------

#: Stabilising constants of Wang et al. (2004), multiplied by the data range.
SSIM_K1 = 0.01
SSIM_K2 = 0.03
#: Gaussian window: 11 taps (radius 5 = int(3.5 * sigma + 0.5)), standard deviation 1.5 pixels.
SSIM_WINDOW_SIZE = 11
SSIM_SIGMA_PX = 1.5


def _gaussian_taps(size: int, sigma_px: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Normalised 1-D Gaussian of ``size`` taps centred on the middle tap."""
    offsets = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    taps = torch.exp(-(offsets**2) / (2 * sigma_px**2))
    return taps / taps.sum()


def _check_image_pair(name: str, a: Tensor, b: Tensor) -> None:
    """Common input checks of :func:`ssim` and :func:`psnr` (``name`` is the caller)."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise ValueError(
            f"{name} expects torch tensors, got a: {type(a).__name__}, b: {type(b).__name__}"
        )
    if a.shape != b.shape:
        raise ValueError(
            f"{name} needs images of the same shape, got a: {tuple(a.shape)}, "
            f"b: {tuple(b.shape)}"
        )
    if a.dim() not in (3, 4):
        raise ValueError(
            f"{name} expects images B x C x H x W or C x H x W, got shape {tuple(a.shape)}"
        )
    if not a.is_floating_point() or not b.is_floating_point():
        raise ValueError(f"{name} expects floating-point images, got {a.dtype} and {b.dtype}")


def ssim(a: Tensor, b: Tensor, data_range: float = 1.0) -> Tensor:
    """Mean structural similarity of each image, averaged over its channels.

    SSIM of Wang et al. (2004), per pixel

    .. math::
        S = \\frac{(2\\mu_a\\mu_b + C_1)(2\\sigma_{ab} + C_2)}
                  {(\\mu_a^2 + \\mu_b^2 + C_1)(\\sigma_a^2 + \\sigma_b^2 + C_2)},
        \\quad C_1 = (K_1 L)^2,\\ C_2 = (K_2 L)^2,

    with local means, variances and covariance taken under an 11 x 11 Gaussian window of
    standard deviation 1.5 pixels (population statistics), ``K1 = 0.01``, ``K2 = 0.03`` and
    ``L = data_range``. ``S`` is averaged over the pixels where the window lies wholly inside
    the image ("valid" positions) and then over channels. This is exactly what
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, channel_axis=...)`` computes, which crops the 5-pixel border
    where its filter would reach outside the image.

    Args:
        a, b: images ``B x C x H x W`` (or ``C x H x W``), floating point, values in
            ``[0, data_range]``; ``H`` and ``W`` at least 11.
        data_range: span of the pixel values (1 for images in ``[0, 1]``).

    Returns:
        ``B`` SSIM values (a 0-dim tensor for ``C x H x W`` input); 1 for identical images.
        Differentiable with respect to both inputs.
    """
    _check_image_pair("ssim", a, b)
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range!r}")
    if min(a.shape[-2:]) < SSIM_WINDOW_SIZE:
        raise ValueError(
            f"ssim needs images of at least {SSIM_WINDOW_SIZE} x {SSIM_WINDOW_SIZE} pixels, "
            f"got shape {tuple(a.shape)}"
        )
    single = a.dim() == 3
    if single:
        a, b = a.unsqueeze(0), b.unsqueeze(0)
    dtype = torch.promote_types(a.dtype, b.dtype)
    a, b = a.to(dtype), b.to(dtype)
    n_batch, n_chan, height, width = a.shape

    taps = _gaussian_taps(SSIM_WINDOW_SIZE, SSIM_SIGMA_PX, dtype, a.device)
    win_h = taps.view(1, 1, -1, 1).expand(n_chan, 1, -1, 1)
    win_w = taps.view(1, 1, 1, -1).expand(n_chan, 1, 1, -1)

    def local_mean(x: Tensor) -> Tensor:
        # separable Gaussian, valid positions only, each channel on its own
        return F.conv2d(F.conv2d(x, win_h, groups=n_chan), win_w, groups=n_chan)

    # one pass of filtering over the five stacked signals
    stacked = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    stacked = stacked.view(n_batch * 5, n_chan, height, width)
    mu_a, mu_b, m_aa, m_bb, m_ab = local_mean(stacked).unflatten(0, (n_batch, 5)).unbind(1)
    var_a = m_aa - mu_a * mu_a
    var_b = m_bb - mu_b * mu_b
    cov_ab = m_ab - mu_a * mu_b
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    s_map = ((2 * mu_a * mu_b + c1) * (2 * cov_ab + c2)) / (
        (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    )
    per_image = s_map.mean(dim=(-3, -2, -1))
    return per_image[0] if single else per_image


def psnr(a: Tensor, b: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio of each image, in decibels.

    .. math::
        \\mathrm{PSNR} = 10 \\log_{10} \\frac{L^2}{\\mathrm{MSE}}, \\quad
        \\mathrm{MSE} = \\frac{1}{C H W} \\sum_{c, y, x} (a - b)^2,

    with ``L = data_range``, the squared error averaged over all channels and pixels of one
    image (the convention of ``skimage.metrics.peak_signal_noise_ratio``). Identical images
    give ``+inf``.

    Args:
        a, b: images ``B x C x H x W`` (or ``C x H x W``; RGB in ``[0, 1]`` for the attacks),
            floating point, same shape, finite values.
        data_range: span of the pixel values (1 for images in ``[0, 1]``).

    Returns:
        ``B`` PSNR values in dB (a 0-dim tensor for ``C x H x W`` input), in the promoted
        dtype of ``a`` and ``b``; differentiable.

    Raises:
        ValueError: not tensors, shapes differ, not 3-D/4-D, not floating point, non-finite
            values, or ``data_range`` not positive.
    """
    _check_image_pair("psnr", a, b)
    if not (isinstance(data_range, (int, float)) and data_range > 0):
        raise ValueError(f"data_range must be a positive number, got {data_range!r}")
    for name, x in (("a", a), ("b", b)):
        if not bool(torch.isfinite(x).all()):
            bad = int((~torch.isfinite(x)).sum())
            raise ValueError(f"psnr: image {name} has {bad} non-finite values (nan or inf)")
    single = a.dim() == 3
    if single:
        a, b = a.unsqueeze(0), b.unsqueeze(0)
    dtype = torch.promote_types(a.dtype, b.dtype)
    mse = (a.to(dtype) - b.to(dtype)).pow(2).mean(dim=(-3, -2, -1))
    per_image = 10.0 * torch.log10(float(data_range) ** 2 / mse)
    return per_image[0] if single else per_image


# --------------------------------------------------------------------------------------------
# Caption metrics (pycocoevalcap 1.2)
# --------------------------------------------------------------------------------------------

#: Keys of :func:`score_captions`' result, in the order COCO reports them.
CAPTION_METRICS = ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr")

#: Unicode categories replaced by a space before tokenisation: control characters (``\r``,
#: ``\n``, tabs, ``\x0b``, ``\x0c``, ``\x85``, ...), line and paragraph separators
#: (``\u2028``, ``\u2029``) and lone surrogates (which cannot be encoded).
_NORMALISED_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})

#: Tokens that pycocoevalcap's PTBTokenizer drops after tokenisation (same list as there).
_PTB_PUNCTUATION = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-"]
    + [".", "?", "!", ",", ":", "-", "--", "...", ";"]
)

DEFAULT_METEOR_TIMEOUT_S = 120.0
DEFAULT_TOKENIZER_TIMEOUT_S = 120.0
_STDERR_TAIL_CHARS = 2000
_N_IDS_SHOWN = 5

CaptionId = Hashable


def normalise_caption(caption: str) -> str:
    """One-line form of ``caption`` for the PTB tokenizer.

    Every control character (``\\r``, ``\\n``, tab, ``\\x0b``, ``\\x0c``, ``\\x85``,
    NUL...), line / paragraph separator (``\\u2028``, ``\\u2029``) and lone surrogate becomes
    one space; nothing else changes (pycocoevalcap itself replaces ``\\n`` the same way). The
    tokenizer treats all of these characters as word breaks anyway, so the words are those of
    the raw caption; but several of them also end a line for the tokenizer (``\\r``,
    ``\\u2028``...), which would shift every later caption onto the wrong image.
    """
    if not isinstance(caption, str):
        raise ValueError(f"caption must be a str, got {type(caption).__name__}: {caption!r}")
    if caption.isascii() and caption.isprintable():
        return caption
    return "".join(
        " " if unicodedata.category(ch) in _NORMALISED_CATEGORIES else ch for ch in caption
    )


def _pycocoevalcap_dir() -> Path:
    """Folder of the installed pycocoevalcap package (it ships the two jars)."""
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pycocoevalcap is not installed (pip install pycocoevalcap==1.2)")
    return Path(next(iter(spec.submodule_search_locations)))


def ptb_tokenizer_jar() -> Path:
    """Stanford CoreNLP 3.4.1 jar shipped with pycocoevalcap (PTB tokenizer)."""
    return _pycocoevalcap_dir() / "tokenizer" / "stanford-corenlp-3.4.1.jar"


def meteor_jar() -> Path:
    """METEOR 1.5 jar shipped with pycocoevalcap (its paraphrase table lies beside it)."""
    return _pycocoevalcap_dir() / "meteor" / "meteor-1.5.jar"


def find_java() -> str:
    """Absolute path of ``java`` on ``PATH``; ``RuntimeError`` saying so when there is none."""
    java = shutil.which("java")
    if java is None:
        raise RuntimeError(
            "java was not found on PATH. The COCO caption metrics need a Java runtime (8 or "
            "newer, e.g. Debian 'openjdk-17-jre-headless' or conda 'openjdk'): pycocoevalcap's "
            "PTB tokenizer runs on it for every metric, and METEOR too. With Java installed, "
            "meteor=False skips only the METEOR scorer (its 2 GB JVM)."
        )
    return java


def _memory_note() -> str:
    """``' (N.N GB of memory available)'`` where the system says, else ``''``."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return f" ({int(line.split()[1]) / 1e6:.1f} GB of memory available)"
    except (OSError, ValueError, IndexError):
        pass
    return ""


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and whatever it started (it leads its own process group)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
    proc.wait()


def _ptb_tokenize(captions: Sequence[str], *, java: str, timeout_s: float) -> list[str]:
    """PTB-tokenise one-line captions exactly as pycocoevalcap's ``PTBTokenizer.tokenize``.

    Same jar, same options (``-preserveLines -lowerCase``), same lines in the same order
    (the tokenizer looks across line ends: how ``"... Ave/CTH D."`` splits depends on the
    line after it, so the set of lines of one call matters), same punctuation removal. But
    the temporary file goes to the system's temporary folder (not into the installed
    package), the number of lines that come back is checked, and a JVM that does not finish
    within ``timeout_s`` is killed with everything it started.
    """
    if not captions:
        return []
    for caption in captions:
        if normalise_caption(caption) != caption:
            raise ValueError(f"caption not normalised (control character inside): {caption!r}")
    text = "\n".join(captions)
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", prefix="privcap-ptb-", delete=False) as f:
        f.write(text.encode("utf-8"))
        path = f.name
    cmd = [java, "-cp", str(ptb_tokenizer_jar()), "edu.stanford.nlp.process.PTBTokenizer"]
    cmd += ["-preserveLines", "-lowerCase", path]
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            raise RuntimeError(
                f"the PTB tokenizer ({java} -cp stanford-corenlp-3.4.1.jar) gave no result "
                f"within tokenizer_timeout_s={timeout_s:g} s; java may be unable to start "
                f"(check '{java} -version'){_memory_note()}"
            ) from None
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        raise RuntimeError(
            f"the PTB tokenizer ({java} -cp stanford-corenlp-3.4.1.jar) failed with exit status "
            f"{proc.returncode}: {err.decode(errors='replace')[-_STDERR_TAIL_CHARS:]}"
        )
    lines = out.decode("utf-8", errors="replace").split("\n")
    if len(lines) != len(captions):
        raise RuntimeError(
            f"the PTB tokenizer returned {len(lines)} lines for {len(captions)} captions; the "
            "captions cannot be matched to their images"
        )
    return [
        " ".join(w for w in line.rstrip().split(" ") if w not in _PTB_PUNCTUATION) for line in lines
    ]


class _MeteorProcess:
    """The METEOR 1.5 scorer (``java -jar -Xmx2G meteor-1.5.jar - - -stdio -l en -norm``).

    The same JVM, options and line protocol as pycocoevalcap's ``Meteor`` (so the same
    numbers), managed so that it cannot hang the caller: the JVM runs in its own process
    group; a thread feeds it all ``SCORE`` lines at once while its answers are read through a
    queue with a timeout; a JVM that exits early or stays silent for ``timeout_s`` seconds is
    reported (``RuntimeError`` with the command, the timeout and the JVM's error output) and
    killed. Start it early: the JVM loads its paraphrase table (~15 s on a busy machine)
    while the caller does other work.
    """

    def __init__(self, java: str) -> None:
        jar = meteor_jar()
        self.cmd = [java, "-jar", "-Xmx2G", jar.name, "-", "-", "-stdio", "-l", "en", "-norm"]
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=jar.parent,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr = bytearray()
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._lines.put(raw.decode("utf-8", errors="replace").strip())
        self._lines.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self._stderr += raw
            del self._stderr[: max(0, len(self._stderr) - _STDERR_TAIL_CHARS)]

    def _write(self, lines: list[str]) -> None:
        assert self.proc.stdin is not None
        try:
            for line in lines:
                self.proc.stdin.write(line.encode("utf-8") + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the JVM is gone; the reader reports it

    def _send(self, lines: list[str]) -> None:
        threading.Thread(target=self._write, args=(lines,), daemon=True).start()

    def _describe(self) -> str:
        return " ".join(self.cmd)

    def _read(self, timeout_s: float) -> str:
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            self.close(graceful=False)
            raise RuntimeError(
                f"METEOR: no answer from java within meteor_timeout_s={timeout_s:g} s "
                f"(command: {self._describe()}). The JVM may be unable to start: it needs "
                f"about 2.5 GB of free memory{_memory_note()}. Raise meteor_timeout_s, or "
                "skip METEOR explicitly with meteor=False."
            ) from None
        if line is None:
            self.close(graceful=False)  # also waits for the rest of its error output
            stderr = self._stderr.decode("utf-8", errors="replace").strip()
            raise RuntimeError(
                f"METEOR: java exited with status {self.proc.returncode} before answering "
                f"(command: {self._describe()}){_memory_note()}: {stderr}"
            )
        return line

    def score(
        self, references: list[list[str]], candidates: list[str], ids: list, timeout_s: float
    ) -> tuple[float, list[float]]:
        """Corpus METEOR of tokenised ``candidates`` against ``references``, and per image.

        ``timeout_s`` bounds each wait for an answer (the first includes the JVM start-up).
        """
        score_lines = []
        for refs, hypothesis in zip(references, candidates, strict=True):
            # the formatting of pycocoevalcap's Meteor._stat, kept byte for byte
            hypothesis = hypothesis.replace("|||", "").replace("  ", " ")
            score_lines.append(" ||| ".join(("SCORE", " ||| ".join(refs), hypothesis)))
        self._send(score_lines)
        stats = []
        for image_id in ids:
            stat = self._read(timeout_s)
            if not stat or not stat[0].isdigit():
                self.close(graceful=False)
                raise RuntimeError(f"METEOR rejected the captions of image {image_id!r}: {stat}")
            stats.append(stat)
        self._send(["EVAL ||| " + " ||| ".join(stats)])
        per_image = [float(self._read(timeout_s)) for _ in ids]
        return float(self._read(timeout_s)), per_image

    def close(self, graceful: bool = True) -> None:
        """End the JVM: close its input and let it exit (``graceful``), then kill it."""
        if graceful and self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        _kill_group(self.proc)
        for reader in self._readers:
            reader.join(timeout=5)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass


def _format_ids(ids: Iterable[CaptionId]) -> str:
    """The first few ids in sorted order, as text (``'1, 2, 3, 4, 5 and 7 more'``)."""
    try:
        ids = sorted(ids)
    except TypeError:  # ids of mixed types
        ids = sorted(ids, key=repr)
    shown = ", ".join(repr(i) for i in ids[:_N_IDS_SHOWN])
    more = f" and {len(ids) - _N_IDS_SHOWN} more" if len(ids) > _N_IDS_SHOWN else ""
    return f"{shown}{more}"


def _check_inputs(
    references: Mapping[CaptionId, Sequence[str]], candidates: Mapping[CaptionId, str]
) -> list[CaptionId]:
    """Validate the two mappings; return the image ids in the order of ``references``."""
    if not isinstance(references, Mapping) or not isinstance(candidates, Mapping):
        raise ValueError(
            "references and candidates must be dicts keyed by image id, got "
            f"{type(references).__name__} and {type(candidates).__name__}"
        )
    if not references:
        raise ValueError("references is empty: nothing to score")
    only_refs = references.keys() - candidates.keys()
    only_cands = candidates.keys() - references.keys()
    if only_refs or only_cands:
        parts = []
        if only_refs:
            parts.append(f"{len(only_refs)} ids without a candidate: {_format_ids(only_refs)}")
        if only_cands:
            parts.append(f"{len(only_cands)} ids without references: {_format_ids(only_cands)}")
        raise ValueError("references and candidates must have the same ids; " + "; ".join(parts))
    for image_id, refs in references.items():
        if isinstance(refs, str) or not isinstance(refs, Sequence):
            raise ValueError(
                f"references[{image_id!r}] must be a list of str, got {type(refs).__name__}: "
                f"{refs!r}"
            )
        if not refs:
            raise ValueError(f"references[{image_id!r}] is an empty list")
        for ref in refs:
            if not isinstance(ref, str):
                raise ValueError(f"references[{image_id!r}] holds a non-str caption: {ref!r}")
    for image_id, cand in candidates.items():
        if not isinstance(cand, str):
            raise ValueError(
                f"candidates[{image_id!r}] must be one str, got {type(cand).__name__}: {cand!r}"
            )
    return list(references)


@dataclass(frozen=True)
class CaptionScores:
    """Result of :func:`caption_scores`.

    Attributes:
        corpus: metric -> corpus-level value as COCO reports it (keys :data:`CAPTION_METRICS`;
            ``"METEOR"`` is ``None`` when it was skipped).
        per_image: image id -> metric -> that image's value, as pycocoevalcap's scorers give
            it (BLEU with the scorer's per-sentence smoothing; CIDEr with the document
            frequencies of the whole scored set; corpus CIDEr and ROUGE-L are the means).
        empty_candidates: ids whose candidate had no word after tokenisation (scored zero).
    """

    corpus: dict[str, float | None]
    per_image: dict[CaptionId, dict[str, float | None]]
    empty_candidates: tuple[CaptionId, ...]


def caption_scores(
    references: Mapping[CaptionId, Sequence[str]],
    candidates: Mapping[CaptionId, str],
    *,
    meteor: bool = True,
    meteor_timeout_s: float = DEFAULT_METEOR_TIMEOUT_S,
    tokenizer_timeout_s: float = DEFAULT_TOKENIZER_TIMEOUT_S,
) -> CaptionScores:
    """COCO caption metrics, corpus-level and per image (DESIGN sec. 7).

    The paper reports the corpus values in its Table 1 (B-1..B-4, METEOR, CIDEr) and the
    METEOR of single images in Fig. 2. See :func:`score_captions` for the computation, the
    arguments and the errors; this function returns the same corpus numbers plus every
    image's own values from the same run.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if not meteor_timeout_s > 0 or not tokenizer_timeout_s > 0:
        raise ValueError(
            f"timeouts must be positive, got meteor_timeout_s={meteor_timeout_s!r}, "
            f"tokenizer_timeout_s={tokenizer_timeout_s!r}"
        )
    ids = _check_inputs(references, candidates)
    ref_captions = [normalise_caption(c) for i in ids for c in references[i]]
    cand_ids = list(candidates)  # tokenised in their own order, as pycocoevalcap would
    cand_captions = [normalise_caption(candidates[i]) for i in cand_ids]
    java = find_java()

    # the METEOR JVM loads its paraphrase table while the tokenizer and other scorers run
    meteor_proc = _MeteorProcess(java) if meteor else None
    succeeded = False
    try:
        # references and candidates in two tokenizer runs, as pycocoevalcap does (the lines
        # of one run influence each other), side by side
        with ThreadPoolExecutor(max_workers=2) as pool:
            jobs = [
                pool.submit(_ptb_tokenize, lines, java=java, timeout_s=tokenizer_timeout_s)
                for lines in (ref_captions, cand_captions)
            ]
            ref_tokens, cand_tokens = (job.result() for job in jobs)
        gts: dict[CaptionId, list[str]] = {}
        start = 0
        for image_id in ids:
            count = len(references[image_id])
            gts[image_id] = ref_tokens[start : start + count]
            start += count
        res = {image_id: [tokens] for image_id, tokens in zip(cand_ids, cand_tokens, strict=True)}

        empty_refs = [i for i in ids if any(not ref for ref in gts[i])]
        if empty_refs:
            raise ValueError(
                f"{len(empty_refs)} images have an empty reference caption (no word after "
                f"tokenisation): {_format_ids(empty_refs)}"
            )
        empty_cands = tuple(i for i in ids if not res[i][0])
        if empty_cands:
            warnings.warn(
                f"{len(empty_cands)} of {len(ids)} candidate captions are empty (no word after "
                f"tokenisation) and score zero: {_format_ids(empty_cands)}",
                UserWarning,
                stacklevel=3,
            )

        bleu, bleu_per_image = Bleu(4).compute_score(gts, res, verbose=0)
        rouge, rouge_per_image = Rouge().compute_score(gts, res)
        cider, cider_per_image = Cider().compute_score(gts, res)
        meteor_score, meteor_per_image = None, [None] * len(ids)
        if meteor_proc is not None:
            meteor_score, meteor_per_image = meteor_proc.score(
                [gts[i] for i in ids], [res[i][0] for i in ids], ids, meteor_timeout_s
            )
        succeeded = True
    finally:
        if meteor_proc is not None:
            meteor_proc.close(graceful=succeeded)

    corpus = [*(float(b) for b in bleu), meteor_score, float(rouge), float(cider)]
    per_image = {}
    for k, image_id in enumerate(ids):
        values = [float(b[k]) for b in bleu_per_image]
        values += [meteor_per_image[k], float(rouge_per_image[k]), float(cider_per_image[k])]
        per_image[image_id] = dict(zip(CAPTION_METRICS, values, strict=True))
    return CaptionScores(
        corpus=dict(zip(CAPTION_METRICS, corpus, strict=True)),
        per_image=per_image,
        empty_candidates=empty_cands,
    )


def score_captions(
    references: Mapping[CaptionId, Sequence[str]],
    candidates: Mapping[CaptionId, str],
    *,
    meteor: bool = True,
    meteor_timeout_s: float = DEFAULT_METEOR_TIMEOUT_S,
    tokenizer_timeout_s: float = DEFAULT_TOKENIZER_TIMEOUT_S,
) -> dict[str, float | None]:
    """COCO caption metrics of ``candidates`` against ``references`` (DESIGN sec. 7).

    The metrics of the paper's Table 1 (B-1..B-4, METEOR, CIDEr) plus ROUGE-L. The numbers
    are those of pycocoevalcap 1.2 run on the same input: its PTB tokenisation (Stanford
    CoreNLP 3.4.1, lower case, punctuation removed), then its ``Bleu(4)``, ``Meteor``,
    ``Rouge`` and ``Cider`` scorers. SPICE is never run (it needs Stanford models
    downloaded at run time), nor ``COCOEvalCap.evaluate()``. Differences from calling
    pycocoevalcap directly, none of which changes the numbers on clean input:

    - every caption is first passed through :func:`normalise_caption`: control characters
      and line separators become spaces (a ``\\r`` inside a caption would otherwise make the
      tokenizer emit an extra line and silently shift every later caption onto the wrong
      image);
    - the two tokenizer runs (references, candidates: separate, as in pycocoevalcap, since
      the tokenizer looks across line ends) go side by side, and the one METEOR JVM starts
      at once and loads its paraphrase table while the other metrics are computed;
    - each JVM runs under a timeout in its own process group and is killed when done or
      stuck: a JVM that cannot start gives a ``RuntimeError`` naming java, the command and
      the timeout instead of hanging; the tokenizer's temporary file goes to the system's
      temporary folder, not into the installed package;
    - BLEU does not print.

    Empty candidates (empty, or with no word left after tokenisation, such as ``"..."``) are
    scored as empty captions: they add zero to every metric and count as length 0 in BLEU's
    brevity penalty. A ``UserWarning`` reports how many and which. An empty reference (no
    word after tokenisation) is an error, since pycocoevalcap's ROUGE-L would score an
    empty candidate against it as a perfect match.

    CIDEr's document frequencies come from the scored set itself: compare CIDEr only between
    runs on the same images.

    Java: the PTB tokenizer needs it for every metric, so without ``java`` on ``PATH`` this
    raises ``RuntimeError`` saying so, whatever ``meteor`` is. ``meteor=False`` skips the
    METEOR JVM (about 2.5 GB of memory and several seconds of start-up), explicitly: the
    result's ``"METEOR"`` is then ``None``.

    Args:
        references: image id -> list of reference captions (at least one each).
        candidates: image id -> the one generated caption; same ids as ``references``.
        meteor: compute METEOR (``False``: ``"METEOR"`` is ``None``).
        meteor_timeout_s: longest wait for any answer of the METEOR JVM, the first one
            including its start-up and the loading of its paraphrase table.
        tokenizer_timeout_s: longest run of the PTB tokenizer's JVM.

    Returns:
        ``{"BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr"}`` -> float
        (corpus-level values as COCO reports them, in [0, 1] except CIDEr). Per-image values:
        :func:`caption_scores`.

    Raises:
        ValueError: ids differ between the two dicts (a few are listed), a value has the
            wrong type, an image has no reference or an empty one, a timeout is not positive.
        RuntimeError: ``java`` is missing, or a JVM fails or times out (the message names
            java, the command and the timeout).
    """
    return caption_scores(
        references,
        candidates,
        meteor=meteor,
        meteor_timeout_s=meteor_timeout_s,
        tokenizer_timeout_s=tokenizer_timeout_s,
    ).corpus
