# The toy CLIP: shipped in data/toy_clip/ and used as is, or retrained (config toyworld.retrain).


rule train_toy_clip:
    """Contrastive training of the toy CLIP on toy-world scenes (CPU, fixed seed)."""
    conda:
        "../../environment.yml"
    output:
        f"{RESULTS}/model/gradeclip-toy-ViT.pt",
    params:
        minutes=config["toyworld"]["train_minutes"],
        steps=config["toyworld"]["train_steps"],
        seed=config["toyworld"]["train_seed"],
    threads: 2
    resources:
        mem_mb=6000,
        runtime=30,
    log:
        "logs/train_toy_clip.log",
    script:
        "../scripts/train_toy_clip.py"
