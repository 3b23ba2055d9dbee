"""Report figures (workstation only): training curves and confusion matrices."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # headless: reports are files, never windows
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: Mapping[str, Sequence[float]], out: str | Path, title: str = "training") -> Path:
    """Loss and accuracy per epoch, train vs validation, side by side."""
    plt = _plt()
    metrics = [m for m in ("loss", "accuracy") if m in history]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        ax.plot(history[m], label="train")
        if f"val_{m}" in history:
            ax.plot(history[f"val_{m}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(m)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return Path(out)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def plot_confusion(cm: np.ndarray, labels: Sequence[str], out: str | Path, title: str) -> Path:
    """Row-normalised confusion matrix with counts in each cell."""
    plt = _plt()
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(labels), 0.8 + 0.55 * len(labels)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return Path(out)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict:
    """Accuracy and per-class precision/recall/support from predictions."""
    cm = confusion_matrix(y_true, y_pred, len(labels))
    tp = np.diag(cm).astype(float)
    per_class = {
        name: {
            "precision": float(tp[i] / cm[:, i].sum()) if cm[:, i].sum() else 0.0,
            "recall": float(tp[i] / cm[i].sum()) if cm[i].sum() else 0.0,
            "support": int(cm[i].sum()),
        }
        for i, name in enumerate(labels)
    }
    return {"accuracy": float(tp.sum() / max(cm.sum(), 1)), "per_class": per_class,
            "confusion": cm.tolist()}
