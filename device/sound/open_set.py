"""The open-set decision: a window is a built-in class, a taught class, or ``unknown``.

Pure numpy, no I/O. The sound model gives class probabilities and (newer
models) an L2-normalised embedding; the box's taught sounds give prototypes
in that embedding space. ``OpenSetDecider.decide`` turns one window's
(probabilities, embedding) into a ``Decision``:

- a built-in class only when the model is sure enough (``min_confidence``) and,
  when the model ships class centres, the embedding lies near that class's
  centre (``max_centre_distance``): "sure" alone is not enough, a 440 Hz tone
  is 1.00 street_music to a closed-set softmax. Models calibrated per class
  carry one such pair per class (``class_thresholds``): a compact class gets
  a tight radius instead of the loosest class's;
- a taught class when the embedding is within ``taught_max_distance`` of its
  prototype, and nearer to it than to the built-in class's centre. A taught
  class may have several prototypes (its takes' window embeddings, onset
  windows included, beside their mean): its distance is the nearest one's, so
  the first 0.05-0.3 s of a sound, which the streaming pipeline decides on, is
  compared with the same part of the takes rather than with their whole. A
  window prototype counts only within ``taught_window_share`` of the radius
  and scores at most ``taught_window_confidence`` (below the pipeline's
  early_threshold): it starts a new sound's running average on the taught
  class instead of ``unknown`` but never decides early on one sliver (those
  were most of the false triggers, measured by ``bench.taught_onset``);
- otherwise ``unknown``: a clear sound (the pipeline's gate already passed it)
  that is none of the above, shown as a "teach me" card.

Without an embedding (the older single-output model) only the confidence rule
applies and nothing can be taught. Thresholds come from the model's metadata
(``open_set``, calibrated on held-out negatives at training time); config
``[teach]`` may override them; the fallbacks below are used by models that
carry no calibration.

``OpenSetModel`` wraps a model so the streaming pipeline sees one score per
decision label (built-in, taught, ``unknown``) and keeps its smoothing and
hysteresis unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from device.config import SoundConfig
from device.errors import ModelError
from device.sound.labels import UNKNOWN

# Fallbacks for a model whose metadata carries no open-set calibration.
DEFAULT_MIN_CONFIDENCE = 0.5
DEFAULT_TAUGHT_MAX_DISTANCE = 0.35  # cosine distance; same-sound takes sit well inside it
# A taught window at exactly taught_max_distance scores this; nearer windows score up to 1. Measured
# (bench.taught_onset, tune families): scoring the pipeline's threshold_on (0.6) at the radius found 2-3
# more taught sounds in 36 but added false triggers on untaught families and negatives; 0.5 is kept.
DEFAULT_TAUGHT_ACCEPT = 0.5
# A taught class's window prototypes (its takes' onset and body windows) count within this share of
# taught_max_distance: the nearest of ~30 windows is near by chance far more often than one mean is.
# Chosen on the tune families of bench.taught_onset: 0.3 finds 31/36 sounds in time (the mean alone
# 26/36) with no more false triggers; 0.5 finds 33/36 with more.
DEFAULT_TAUGHT_WINDOW_SHARE = 0.3
# The most a match to a window prototype scores: below the pipeline's early_threshold, so one onset
# window never decides a taught sound by itself (those early decisions were most of the false triggers);
# it still starts the running average of a new sound on the taught class instead of on ``unknown``.
DEFAULT_TAUGHT_WINDOW_CONFIDENCE = SoundConfig().early_threshold - 0.05


def normalise(v: np.ndarray) -> np.ndarray:
    """Unit-length float32 copy of ``v`` (a zero vector stays zero)."""
    v = np.asarray(v, dtype=np.float32).reshape(-1)
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-12 else v.copy()


def _unit_rows(v: np.ndarray) -> np.ndarray:
    """A prototype (dim,) or prototypes (K, dim) as unit rows, K x dim float32."""
    m = np.asarray(v, dtype=np.float32)
    m = m.reshape(1, -1) if m.ndim == 1 else m.reshape(len(m), -1)
    return np.stack([normalise(r) for r in m]) if len(m) else m


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cos(a, b): 0 for the same direction, 1 orthogonal, 2 opposite."""
    return float(1.0 - np.dot(normalise(a), normalise(b)))


@dataclass(frozen=True)
class OpenSetParams:
    """Thresholds of the decision; ``class_centres`` are built-in class centres in the embedding."""

    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    max_centre_distance: float | None = None  # None: built-in classes are judged by confidence only
    taught_max_distance: float = DEFAULT_TAUGHT_MAX_DISTANCE
    class_centres: Mapping[str, np.ndarray] = field(default_factory=dict)
    taught_accept: float = DEFAULT_TAUGHT_ACCEPT  # taught confidence at taught_max_distance
    # Window prototypes (a class's rows after its first, the mean) count within this share of the radius.
    taught_window_share: float = DEFAULT_TAUGHT_WINDOW_SHARE
    taught_window_confidence: float = DEFAULT_TAUGHT_WINDOW_CONFIDENCE  # the most a window-prototype match scores
    take_max_distance: float | None = None  # enrolment's take-agreement limit; None: taught_max_distance
    # Per built-in class {label: (min_confidence, max_centre_distance)}, from the model's calibration;
    # a class not listed uses the pair above.
    class_thresholds: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any], where: str = "<model metadata>", unknown: str = "default",
                      **overrides: float | None) -> "OpenSetParams":
        """From a model's metadata ``open_set``; ``unknown="strict"``: its stricter calibration
        (``open_set.strict``); ``overrides`` that are not None win (config [teach])."""
        block = meta.get("open_set") or {}
        if not isinstance(block, Mapping):
            raise ModelError(f"{where}: 'open_set' must be a JSON object")
        block = calibration_block(block, unknown, where)
        labels = list(meta.get("labels", ()))
        dim = (meta.get("embedding") or {}).get("dim")
        centres = {}
        for label, vec in dict(block.get("class_centres") or {}).items():
            if label not in labels:
                raise ModelError(f"{where}: open_set class_centres names {label!r}, which is not one of the labels")
            v = np.asarray(vec, dtype=np.float32).reshape(-1)
            if (dim is not None and len(v) != int(dim)) or not np.all(np.isfinite(v)):
                raise ModelError(f"{where}: open_set class_centres[{label!r}] must be {dim} finite numbers")
            centres[label] = normalise(v)
        values: dict[str, Any] = {}
        for key in ("min_confidence", "max_centre_distance", "taught_max_distance", "take_max_distance"):
            v = overrides.get(key)
            if v is None:
                v = block.get(key)
            if v is not None:
                values[key] = _threshold(v, f"{where}: open_set {key}")
        per_class = {}
        # A config override of either threshold means one pair for every class (what the user asked for).
        if overrides.get("min_confidence") is None and overrides.get("max_centre_distance") is None:
            per_class = parse_class_thresholds(block.get("class_thresholds"), labels, where)
        return cls(class_centres=centres, class_thresholds=per_class, **values)

    def for_class(self, label: str) -> tuple[float, float | None]:
        """(min_confidence, max_centre_distance) that apply when ``label`` is the model's top class."""
        return self.class_thresholds.get(label, (self.min_confidence, self.max_centre_distance))

    @property
    def take_limit(self) -> float:
        """How far one take may sit from the others' mean before enrolment warns."""
        return self.take_max_distance if self.take_max_distance is not None else self.taught_max_distance


def calibration_block(block: Mapping[str, Any], unknown: str, where: str) -> Mapping[str, Any]:
    """The ``open_set`` block as the chosen calibration sees it: ``unknown="strict"`` puts the model's
    strict pair (``open_set.strict``) in place of the global one and drops the per-class pairs, which
    belong to the default calibration."""
    if unknown == "default":
        return block
    if unknown != "strict":
        raise ValueError(f"unknown calibration {unknown!r} (default | strict)")
    strict = block.get("strict")
    if not isinstance(strict, Mapping):
        raise ModelError(f"{where}: [teach] unknown = \"strict\" but the model has no strict calibration "
                         "(open_set.strict): use a model from make models, or unknown = \"default\"")
    out = {k: v for k, v in block.items() if k != "class_thresholds"}
    out.update({k: strict[k] for k in ("min_confidence", "max_centre_distance") if k in strict})
    return out


def parse_class_thresholds(block: Any, labels: Sequence[str], where: str) -> dict[str, tuple[float, float]]:
    """``open_set.class_thresholds`` ({label: {min_confidence, max_centre_distance}}) checked and as pairs."""
    if block is None:
        return {}
    if not isinstance(block, Mapping):
        raise ModelError(f"{where}: open_set class_thresholds must be a JSON object")
    out = {}
    for label, pair in block.items():
        if label not in labels:
            raise ModelError(f"{where}: open_set class_thresholds names {label!r}, which is not one of the labels")
        out[label] = tuple(_threshold(pair.get(key) if isinstance(pair, Mapping) else None,
                                      f"{where}: open_set class_thresholds[{label!r}] {key}")
                           for key in ("min_confidence", "max_centre_distance"))
    return out


def _threshold(v: Any, what: str) -> float:
    """A metadata threshold as a float, or one line naming ``what`` when it is not a number >= 0."""
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v) or v < 0:
        raise ModelError(f"{what} = {v!r}: expected a number >= 0")
    return float(v)


@dataclass(frozen=True)
class Decision:
    """What one window is: ``kind`` "builtin" | "taught" | "unknown"."""

    label: str
    kind: str
    confidence: float  # built-in: the model's probability; taught: taught_accept..1 from the distance; unknown: 0..1
    distance: float | None = None  # embedding distance to the decided class (to the nearest, for unknown)
    nearest: str | None = None  # the nearest class in the embedding, whatever was decided


class OpenSetDecider:
    """Decides built-in | taught | unknown from probabilities, an embedding and taught prototypes.

    ``labels`` are the model's built-in classes; ``prototypes`` maps each taught
    label to its prototype (one vector) or prototypes (a K x dim array; the
    nearest decides). ``labels_out`` is every label a decision can have, in the
    order of ``scores``.
    """

    def __init__(self, labels: Sequence[str], params: OpenSetParams = OpenSetParams(),
                 prototypes: Mapping[str, np.ndarray] | None = None):
        self.builtin = list(labels)
        self.params = params
        self.prototypes = {k: _unit_rows(v) for k, v in (prototypes or {}).items()}
        clash = [k for k in self.prototypes if k in self.builtin or k == UNKNOWN]
        if clash:
            raise ValueError(f"taught label {clash[0]!r} is a built-in label or {UNKNOWN!r}")
        self.taught = list(self.prototypes)
        self.labels_out = self.builtin + self.taught + [UNKNOWN]
        rows = [self.prototypes[k] for k in self.taught]
        self._taught_matrix = np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)
        # Where each class's rows end in the matrix: its distance is the minimum over them.
        self._taught_starts = np.cumsum([0] + [len(r) for r in rows[:-1]]).astype(np.intp)
        # A window prototype's distance is scaled so that its own radius maps onto taught_max_distance.
        ratio = 1.0 / max(params.taught_window_share, 1e-6)
        self._row_scale = (np.concatenate([np.r_[1.0, np.full(len(r) - 1, ratio)] for r in rows]).astype(np.float32)
                           if rows else np.zeros(0, np.float32))

    def with_prototypes(self, prototypes: Mapping[str, np.ndarray]) -> "OpenSetDecider":
        """The same decision with another set of taught sounds (after teaching or forgetting)."""
        return OpenSetDecider(self.builtin, self.params, prototypes)

    def distances(self, embedding: np.ndarray) -> dict[str, float]:
        """Cosine distance from ``embedding`` to every built-in centre and taught prototype."""
        e = normalise(embedding)
        out = {k: float(1.0 - np.dot(e, c)) for k, c in self.params.class_centres.items()}
        if self.taught:
            out.update(zip(self.taught, self._taught_distances(e)[0].tolist()))
        return out

    def _taught_distances(self, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distance to the nearest prototype, distance to the mean) of every taught class to unit ``e``;
        window prototypes' distances are scaled to the mean's radius (``taught_window_share``)."""
        d = (1.0 - self._taught_matrix @ e) * self._row_scale
        return np.minimum.reduceat(d, self._taught_starts), d[self._taught_starts]

    def decide(self, probs: np.ndarray, embedding: np.ndarray | None) -> Decision:
        """The decision for one window."""
        p = self.params
        probs = np.asarray(probs, dtype=np.float32).reshape(-1)
        b = int(np.argmax(probs))
        label_b, conf_b = self.builtin[b], float(probs[b])
        if embedding is None:
            if conf_b >= p.for_class(label_b)[0]:
                return Decision(label_b, "builtin", conf_b)
            return Decision(UNKNOWN, "unknown", 1.0 - conf_b, nearest=label_b)
        dist = self.distances(embedding)
        d_b = dist.get(label_b)
        min_conf, max_dist = p.for_class(label_b)
        near_b = d_b is None or max_dist is None or d_b <= max_dist
        builtin_ok = conf_b >= min_conf and near_b
        nearest = min(dist, key=dist.get) if dist else label_b
        if self.taught:
            t = min(self.taught, key=lambda k: dist[k])
            d_t = dist[t]
            if d_t <= p.taught_max_distance and (not builtin_ok or d_b is None or d_t < d_b):
                r = max(p.taught_max_distance, 1e-6)
                d_mean = float(self._taught_distances(normalise(embedding))[1][self.taught.index(t)])
                # Near the mean: the full confidence. Near only a window: capped (never decides early alone).
                conf = max(1.0 - (1.0 - p.taught_accept) * d_mean / r if d_mean <= r else 0.0,
                           min(1.0 - (1.0 - p.taught_accept) * d_t / r, p.taught_window_confidence))
                return Decision(t, "taught", conf, d_t, nearest)
        if builtin_ok:
            return Decision(label_b, "builtin", conf_b, d_b, nearest)
        # Far from every centre: sure it is none of ours. Merely unsure: as unsure as the model.
        conf = 1.0 if conf_b >= min_conf else 1.0 - conf_b
        return Decision(UNKNOWN, "unknown", conf, dist.get(nearest), nearest)

    def scores(self, probs: np.ndarray, embedding: np.ndarray | None) -> Scores:
        """One score per ``labels_out``, for the pipeline's smoothing and hysteresis.

        A built-in decision keeps the model's probabilities (today's behaviour for
        sounds the box knows); a taught or unknown decision puts its confidence on
        its own label and nothing elsewhere, so a rejected built-in class cannot
        win the running average.
        """
        d = self.decide(probs, embedding)
        out = np.zeros(len(self.labels_out), dtype=np.float32).view(Scores)
        if d.kind == "builtin":
            out[: len(self.builtin)] = np.asarray(probs, dtype=np.float32).reshape(-1)
            out.heard = d.label
        else:
            out[self.labels_out.index(d.label)] = d.confidence
            out.heard = d.nearest if d.kind == "unknown" and d.nearest in self.builtin else None
        return out


class Scores(np.ndarray):
    """``OpenSetDecider.scores``: one score per output label, plus ``heard``, the built-in class the window
    sounds most like whether or not it was shown (None: a taught sound, or no built-in class is near).
    The pipeline's habituation counts ``heard``: a TV's music is mostly rejected, yet it is what the room
    keeps playing."""

    heard: str | None = None


def infer(model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(probabilities, embedding or None) from any model object (``infer`` if it has one, else ``predict``)."""
    if hasattr(model, "infer"):
        return model.infer(x)
    return model.predict(x), None


class OpenSetModel:
    """A sound model seen through the open-set decision.

    ``predict(x)`` returns ``decider.scores`` over ``labels`` (built-in, taught,
    ``unknown``), so ``SoundPipeline(OpenSetModel(...).predict, ...labels)``
    emits ClassDetected for taught labels and ``unknown`` with its usual
    smoothing, hysteresis and silence gate. Other attributes are the model's.
    """

    def __init__(self, model: Any, decider: OpenSetDecider):
        self.model = model
        self.decider = decider

    @property
    def labels(self) -> list[str]:
        return list(self.decider.labels_out)

    @property
    def builtin_labels(self) -> list[str]:
        """The model's own classes (the pipeline's early agreement rule decides only these)."""
        return list(self.decider.builtin)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.decider.scores(*infer(self.model, x))

    def decide(self, x: np.ndarray) -> Decision:
        return self.decider.decide(*infer(self.model, x))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)
