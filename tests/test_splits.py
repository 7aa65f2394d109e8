from collections import Counter

from tagger.splits import sequence_groups, split_by_group


def test_bursts_group_and_distant_frames_do_not():
    groups = sequence_groups(["iss052e035712.jpg", "iss052e035713.jpg", "iss052e035900.jpg", "iss053e035713.jpg",
                              "ESP_011289_1950_RED-0039.jpg", "odd.jpg"])
    assert groups["iss052e035712.jpg"] == groups["iss052e035713.jpg"]
    assert groups["iss052e035900.jpg"] != groups["iss052e035712.jpg"]
    assert groups["iss053e035713.jpg"] != groups["iss052e035713.jpg"]  # another mission
    assert groups["odd.jpg"] == "odd"


def test_split_keeps_groups_whole_and_spreads_rare_tags():
    labels, groups = {}, {}
    for seq in range(60):
        tag = "Rare" if seq % 10 == 0 else "Common"
        for frame in range(3):
            name = f"s{seq}_{frame}"
            labels[name] = [tag]
            groups[name] = f"s{seq}"
    split = split_by_group(labels, groups, seed=1)
    for seq in range(60):
        assert len({split[f"s{seq}_{f}"] for f in range(3)}) == 1
    sizes = Counter(split.values())
    assert abs(sizes["train"] - 108) <= 9 and abs(sizes["test"] - 36) <= 9
    rare = Counter(split[n] for n, t in labels.items() if t == ["Rare"])
    assert set(rare) == {"train", "validation", "test"}
