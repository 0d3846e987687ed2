"""Regenerate the e-commerce example: 2,000 reference records and the target tables derived from them.

    python examples/ecommerce/generate.py

The records come from the paper's Bayesian network (llmsynthor.evaluation.datasets.ecommerce_sample, seed 2025).
Continuous variables are binned into 6 quantile bins of the reference (inner edges rounded), as in the paper.
"""

from pathlib import Path

from llmsynthor.evaluation.datasets import binned, contingency, ecommerce_sample, quantile_edges

from llmsynthor import load_spec

HERE = Path(__file__).parent
N, SEED = 2000, 2025
TABLES = {
    "age": ["age"], "gender": ["gender"], "location": ["location"], "category": ["category"],
    "price": ["price"], "payment": ["payment"],
    "age_gender_category": ["age", "gender", "category"],
    "category_price": ["category", "price"],
    "location_payment": ["location", "payment"],
}


def main(out_dir: Path = HERE) -> None:
    reference = ecommerce_sample(N, seed=SEED)
    reference.to_csv(out_dir / "reference.csv", index=False)
    variables = load_spec(HERE / "spec.yaml").variables  # domains come from the spec
    binned_ref = reference.copy()
    for name in ("age", "price"):
        binned_ref[name] = binned(reference[name], variables[name], quantile_edges(reference[name], 6, variables[name]))
    (out_dir / "targets").mkdir(exist_ok=True)
    for name, variables in TABLES.items():
        contingency(binned_ref, variables).to_csv(out_dir / "targets" / f"{name}.csv", index=False)


if __name__ == "__main__":
    main()
