"""`parallel`: the worst moment is the largest fleets of one type up together; say how many would fit."""

from sme.recommend.checks import fitting, most_at_once, parallel_problems, serverless_problems


def test_the_worst_moment_is_the_largest_fleets_together():
    assert most_at_once([1, 3, 2], 2) == 5
    assert fitting([1, 3, 2], 4) == 1, "the largest fleet (3) fits, the next (2) would make 5"
    assert fitting([1, 1, 1], 2) == 2


def test_a_quota_too_small_for_parallel_says_which_and_how_many_fit():
    problems = parallel_problems({"ml.c5.large": [1, 1, 1]}, {"ml.c5.large": 2}, None, 3)
    assert len(problems) == 1
    what, fits = problems[0]
    assert "ml.c5.large for endpoint usage" in what and "leaves 2 free" in what and fits == 2


def test_free_addresses_count_every_type_and_an_unread_quota_is_not_a_problem():
    problems = parallel_problems({"ml.c5.large": [2], "ml.m5.xlarge": [2]}, {}, 3, 2)
    assert problems == [("2 candidate(s) at once need 4 address(es) in the subnets, which have 3 free", 1)]
    assert parallel_problems({"ml.c5.large": [2], "ml.m5.xlarge": [2]}, {"ml.c5.large": 5}, 4, 2) == []


SERVERLESS_QUOTAS = {"Maximum total concurrency that can be allocated across all serverless endpoints": 10.0,
                     "Maximum number of serverless endpoints": 3.0, "ml.c5.large for endpoint usage": 5.0}


def test_serverless_candidates_at_once_must_fit_the_accounts_total_concurrency():
    problems = serverless_problems([8, 4, 2], SERVERLESS_QUOTAS, (0, 0), 2)
    assert len(problems) == 1
    what, fits = problems[0]
    assert "need a total concurrency of 12" in what and "leaves 10 free" in what, what
    assert fits == 1, "the largest (8) fits alone, not beside the next (4)"
    assert serverless_problems([8, 4, 2], SERVERLESS_QUOTAS, (1, 3), 2)[0][1] == 0, "3 used elsewhere: 8 > 7"
    assert serverless_problems([4, 2], SERVERLESS_QUOTAS, (0, 0), 2) == []


def test_serverless_candidates_at_once_must_fit_the_serverless_endpoint_quota():
    what, fits = serverless_problems([1, 1, 1], SERVERLESS_QUOTAS, (2, 0), 3)[0]
    assert "3 serverless endpoint(s)" in what and "leaves 1 free" in what and fits == 1


def test_no_serverless_quota_listed_is_no_problem():
    assert serverless_problems([200, 200], {"ml.c5.large for endpoint usage": 5.0}, (0, 0), 2) == []
