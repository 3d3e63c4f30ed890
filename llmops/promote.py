"""Placeholder: filled in by its own change."""

import argparse


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    pass
