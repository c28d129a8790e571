"""Monomer / dimer classification from per-particle features.

The evidence a scientist weighs (docs/physics.md): pulsed g2(0) (raw and time-gated), the
bright-state lifetime, blinking statistics (ON fraction, number of intensity levels, time in
intermediate levels, Fano factor) and, when a spectrum was recorded, the red shift of the
emission peak against the session's monomers and its width.

The model is an L2-regularised logistic regression on standardised features, one model per
feature set (with spectrum, photons only), so that a particle without a spectrum is classified with
the confidence its photons allow rather than with imputed numbers. Each feature's contribution to
the log-odds is reported as its evidence. Parameters are fitted on simulated populations by
``spad/app/calibrate.py`` and shipped as ``analysis/data/classifier.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from spad.analysis.schema import PHOTON_FEATURES, SPECTRUM_FEATURES

__all__ = ["PHOTON_FEATURES", "SPECTRUM_FEATURES", "Classification", "Classifier",
           "LogisticModel", "fit_logistic", "load_classifier"]

MODEL_PATH = Path(__file__).parent / "data" / "classifier.json"

LABELS = ("monomer", "dimer")

OUT_OF_RANGE_Z = 5.0
"""A feature further than this many (pooled) standard deviations from the calibration
population's mean means the particle is unlike anything the model was fitted on: no verdict."""

_TRANSFORMS = {
    # Lifetimes and Fano factors spread multiplicatively; logs make them closer to normal.
    "lifetime_ns": lambda v: math.log(max(v, 0.05)),
    "fano_factor": lambda v: math.log(max(v, 0.05)),
    "n_levels": lambda v: math.log(max(v, 1.0)),
    # The excess variance of ON/OFF blinking is about (1 - f) / f for an ON fraction f: a ratio,
    # heavy-tailed in short recordings where one long OFF dwell dominates (power-law dwells).
    # The floor is its counting noise at the lowest rates covered (1 kcps, 10 ms bins, 5 s:
    # about +/- 0.006), where a steady emitter lies.
    "intensity_excess_var": lambda v: math.log(max(v, 0.01)),
}


def _transform(name: str, value: float) -> float:
    f = _TRANSFORMS.get(name)
    return float(f(value)) if f else float(value)


@dataclass
class LogisticModel:
    """A logistic regression over named, standardised features.

    ``P(dimer) = 1 / (1 + exp(-(bias + Σ w_i (x_i - mean_i) / scale_i)))``.
    """

    features: list[str]
    mean: list[float]
    scale: list[float]
    weights: list[float]
    bias: float

    def evidence(self, values: Mapping[str, float]) -> dict[str, float]:
        """Each feature's contribution to the log-odds of *dimer*."""
        return {
            name: w * (_transform(name, values[name]) - m) / s
            for name, m, s, w in zip(self.features, self.mean, self.scale, self.weights,
                                     strict=True)
        }

    def outside(self, values: Mapping[str, float]) -> list[str]:
        """Features whose value lies far outside the calibration population."""
        return [name for name, m, s in zip(self.features, self.mean, self.scale, strict=True)
                if abs(_transform(name, values[name]) - m) / s > OUT_OF_RANGE_Z]

    def probability(self, values: Mapping[str, float]) -> float:
        z = self.bias + sum(self.evidence(values).values())
        return float(1.0 / (1.0 + math.exp(-max(min(z, 500.0), -500.0))))


@dataclass
class Classification:
    """The verdict for one particle.

    Attributes
    ----------
    label
        ``"monomer"``, ``"dimer"`` or ``"uncertain"``.
    probability
        Probability of the label (for ``"uncertain"`` below the threshold: of the likelier
        class); ``None`` when the model cannot be applied (features missing, or outside the
        range it was calibrated on: a probability it extrapolates is not one).
    p_dimer
        Probability that the particle is a coupled dimer (``None`` as ``probability``).
    evidence
        Contribution of each feature to the log-odds of *dimer* (positive favours dimer).
    model
        Which model was used: ``"spectrum+photons"``, ``"photons"`` or ``"none"``.
    reason
        Why the label is ``"uncertain"`` (empty for a verdict).
    """

    label: str
    probability: float | None
    p_dimer: float | None
    evidence: dict[str, float] = field(default_factory=dict)
    model: str = "photons"
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Classifier:
    """Logistic models with and without spectral features, a fallback photon model without
    the gated g2(0) (a gate that leaves too few coincidences at a few kcps), and the decision
    threshold."""

    with_spectrum: LogisticModel
    photons_only: LogisticModel
    uncertain_below: float = 0.8
    provenance: dict = field(default_factory=dict)
    ungated: LogisticModel | None = None

    @classmethod
    def load(cls, path: str | Path = MODEL_PATH) -> Classifier:
        """Load shipped (or re-fitted) parameters from JSON."""
        d = json.loads(Path(path).read_text())
        ungated = d.get("ungated")
        return cls(LogisticModel(**d["with_spectrum"]), LogisticModel(**d["photons_only"]),
                   d.get("uncertain_below", 0.8), d.get("provenance", {}),
                   LogisticModel(**ungated) if ungated else None)

    def save(self, path: str | Path = MODEL_PATH) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1) + "\n")

    def classify(self, features: Mapping[str, float | None]) -> Classification:
        """Classify one particle from its features (``None`` or NaN = not measured).

        Uses the spectrum model when every spectral and photon feature is present, the photon
        model when the photon features are, the ungated photon model when only the gated g2(0)
        is missing; otherwise the verdict is ``uncertain``.
        """
        have = {k: float(v) for k, v in features.items()
                if v is not None and np.isfinite(float(v))}
        if all(f in have for f in self.with_spectrum.features):
            model, name = self.with_spectrum, "spectrum+photons"
        elif all(f in have for f in self.photons_only.features):
            model, name = self.photons_only, "photons"
        elif self.ungated is not None and all(f in have for f in self.ungated.features):
            model, name = self.ungated, "photons without gate"
        else:
            missing = [f for f in self.photons_only.features if f not in have]
            return Classification("uncertain", None, None, {}, "none",
                                  f"missing {', '.join(missing)}")
        p = model.probability(have)
        ev = model.evidence(have)
        far = model.outside(have)
        if far:
            return Classification("uncertain", None, None, ev, name,
                                  f"outside the calibrated range: {', '.join(far)}")
        likely, p_likely = ("dimer", p) if p >= 0.5 else ("monomer", 1.0 - p)
        if p_likely >= self.uncertain_below:
            return Classification(likely, p_likely, p, ev, name)
        return Classification("uncertain", p_likely, p, ev, name,
                              f"{likely} is likelier (p = {p_likely:.2f}) but below the "
                              f"threshold {self.uncertain_below:g}")


def fit_logistic(rows: Sequence[Mapping[str, float]], is_dimer: Sequence[bool],
                 features: Sequence[str], l2: float = 1.0) -> LogisticModel:
    """Fit a logistic model by penalised maximum likelihood.

    Parameters
    ----------
    rows
        Feature dicts of the training particles (all ``features`` present and finite).
    is_dimer
        Truth labels.
    features
        Names of the features to use.
    l2
        Ridge penalty on the standardised weights (keeps the model from becoming certain on
        perfectly separable training data).
    """
    x = np.array([[_transform(f, r[f]) for f in features] for r in rows], dtype=float)
    y = np.asarray(is_dimer, dtype=float)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        b, w = theta[0], theta[1:]
        s = b + z @ w
        # log(1 + e^s) - y s, computed stably
        loss = np.sum(np.logaddexp(0.0, s) - y * s) + 0.5 * l2 * np.dot(w, w)
        p = 1.0 / (1.0 + np.exp(-s))
        grad = np.concatenate([[np.sum(p - y)], z.T @ (p - y) + l2 * w])
        return float(loss), grad

    res = minimize(nll, np.zeros(len(features) + 1), jac=True, method="L-BFGS-B")
    return LogisticModel(list(features), mean.tolist(), scale.tolist(), res.x[1:].tolist(),
                         float(res.x[0]))


def load_classifier() -> Classifier:
    """The classifier shipped with spad."""
    return Classifier.load(MODEL_PATH)
