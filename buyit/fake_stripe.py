"""localstripe, the embedded fake Stripe, as `buyit up` runs it: without its copy of everything on disk.

localstripe pickles its whole store (every PaymentIntent, charge, event it ever made) to
/tmp/localstripe.pickle on every write, so each call costs more than the one before: over a 30-minute
`bench.soak` its CPU grew from 0.7 % to 12.7 % of a core, and the shoppers, waiting on it to pay,
made 11 % fewer requests in the last five minutes than in the first. The file only serves a restart
that loads it, and BuyIt starts localstripe `--from-scratch` (it also is one path for every instance
on the machine), so nothing here writes it.

    python -m buyit.fake_stripe --port 8420 --from-scratch
"""

from __future__ import annotations


def quiet() -> None:
    """Keep localstripe's store in memory only."""
    from localstripe.resources import Store
    Store.dump_to_disk = lambda self: None


def main() -> None:
    quiet()
    from localstripe.server import start
    start()


if __name__ == "__main__":
    main()
