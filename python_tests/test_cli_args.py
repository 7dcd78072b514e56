"""The argument types every subcommand shares: good values parse, bad ones name the flag."""
import argparse

import pytest

from mumoe_ext import cli_args


def test_good_values_parse():
    assert cli_args.comma_list(" a, b ,,c", "--x") == ["a", "b", "c"]
    assert cli_args.choice_list("wanda,mumoe", "--methods", ["wanda", "mumoe"]) == ["wanda", "mumoe"]
    assert cli_args.densities("0.6,0.5,1", "--density") == [0.6, 0.5, 1.0]
    assert cli_args.positive("3") == 3
    assert cli_args.as_list("0.5", cli_args.densities) == [0.5] and cli_args.as_list([0.4], None) == [0.4]


@pytest.mark.parametrize("call,flag", [
    (lambda: cli_args.comma_list(" , ", "--datasets"), "--datasets"),
    (lambda: cli_args.choice_list("wanda,nope", "--methods", ["wanda"]), "--methods"),
    (lambda: cli_args.densities("0.5,abc", "--density"), "--density"),
    (lambda: cli_args.densities("0.5,0", "--density"), "--density"),
    (lambda: cli_args.densities("1.5", "--density"), "--density"),
    (lambda: cli_args.positive("0"), "positive"),
    (lambda: cli_args.positive("two"), "positive"),
])
def test_bad_values_name_the_flag(call, flag):
    with pytest.raises(argparse.ArgumentTypeError, match=flag):
        call()
