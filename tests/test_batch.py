"""gradeclip.jobs: job lists, their texts field and how they are cut into shards."""
from __future__ import annotations

import pytest

from gradeclip.jobs import ImageJob, TextJob, jobs_in_shard, shard_count


def test_shards_cut_the_images_of_a_job_list():
    """The shards of a list follow its images, not its jobs, nor a configured count: every job in exactly one
    shard, an image's jobs together, no empty shard while images are left."""
    jobs = [TextJob(f"c{i}", f"img{i // 3}", "p", "a caption") for i in range(3 * 7)]  # 7 images, 3 captions each
    assert shard_count(jobs, 3) == 3 and shard_count(jobs, 7) == 1 and shard_count(jobs, 100) == 1
    shards = [jobs_in_shard(jobs, k, 3) for k in range(shard_count(jobs, 3))]
    assert [len({j.image_id for j in s}) for s in shards] == [3, 3, 1]
    assert sorted(j.caption_id for s in shards for j in s) == sorted(j.caption_id for j in jobs)
    assert jobs_in_shard(jobs, 3, 3) == []
    images = [ImageJob("b", "p", ("x",)), ImageJob("a", "p", ("y", "z"))]
    assert shard_count(images, 1) == 2 and jobs_in_shard(images, 0, 1) == images[:1]  # order of first appearance
    assert shard_count([], 5) == 1  # an empty list still has its (empty) shard
    with pytest.raises(ValueError):
        shard_count(jobs, 0)


def test_job_list_texts_round_trip_and_unwritable_texts_are_named(tmp_path):
    from gradeclip.jobs import join_texts, load_jobs_tsv, split_texts

    texts = ("a red cube", "the cube's shadow", "x | y")
    assert split_texts(join_texts(texts)) == texts
    (tmp_path / "jobs.tsv").write_text(f"image_id\tpath\ttexts\nimg1\tp.png\t{join_texts(texts)}\n")
    assert load_jobs_tsv(tmp_path / "jobs.tsv", "image")[0].texts == texts
    for bad in ("a || b", "tab\there", "new\nline", "  "):
        with pytest.raises(ValueError, match="cannot be written to a job list"):
            join_texts(["fine", bad])
