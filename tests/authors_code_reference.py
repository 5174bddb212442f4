"""Run the authors' own code of the comparison methods on given weights and inputs; ``tests/test_baselines_authors.py``
compares its output with ``gradeclip.baselines``. Nothing of the authors' code is in this repository: it is read at
run time from their git checkouts.

    python tests/authors_code_reference.py CHECKOUTS WORKDIR

Run it with a Python whose packages the authors' code needs (torch, ftfy, regex, packaging, numpy, scikit-image,
transformers, einops, opencv, timm, and open_clip_torch<=2.23.0 for LeGrad: LeGrad 1.1 hooks open_clip's blocks as
sequence-first, which open_clip 3.x no longer runs). CHECKOUTS holds the checkouts as folders named Grad-Eclip,
Transformer-MM-Explainability, CLIP_Surgery, M2IB and LeGrad. WORKDIR holds ``inputs.pt`` (written by the test):
an OpenAI-format CLIP state dict (ViT-B-16, QuickGELU), pixels (B, 3, 224, 224), texts, the model's L2-normalised
text embeddings, and the options below; ``reference.pt`` is written there.

The authors' code runs as fetched except for three mechanical changes made to its source text before it runs, each
needed on a CPU-only machine: ``.cuda()`` -> ``.to(device)`` (Chefer's ``interpret`` and the Grad-ECLIP repository's
``mm_interpret``), ``x.half()`` -> ``x.float()`` (the Grad-ECLIP repository's ``clip_encode_dense``, written for fp16 on
a GPU), and only the functions are taken from ``generate_emap.py`` (its module level loads pretrained weights).
"""
from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

DEVICE = "cpu"
START = __import__("time").perf_counter()


def progress(what: str) -> None:
    print(f"[{__import__('time').perf_counter() - START:6.0f} s] {what}", file=sys.stderr, flush=True)


def load_package(name: str, folder: Path):
    """Import the package in ``folder`` under ``name`` (two of the checkouts ship a package called ``clip``)."""
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py", submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def functions_of(path: Path, names: list[str], namespace: dict, replace: dict[str, str]) -> dict:
    """Execute the named top-level functions of a source file (after the textual replacements) in ``namespace``."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in names:
            source = ast.get_source_segment(path.read_text(), node)
            for old, new in replace.items():
                source = source.replace(old, new)
            exec(compile(source, str(path), "exec"), namespace)
    missing = [n for n in names if n not in namespace]
    if missing:
        raise RuntimeError(f"{path}: functions not found: {missing}")
    return namespace


def notebook_function(path: Path, name: str, namespace: dict, replace: dict[str, str]) -> dict:
    for cell in json.loads(path.read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and f"def {name}(" in source:
            for old, new in replace.items():
                source = source.replace(old, new)
            exec(compile(source, f"{path}:{name}", "exec"), namespace)
            return namespace
    raise RuntimeError(f"{path}: no cell defines {name}")


class OpenAIEncodeImage:
    """OpenAI's ``encode_image`` casts its input to the model's dtype (RISE's masks are float64); open_clip's does not."""

    def __init__(self, model):
        self.model = model

    def encode_image(self, image):
        return self.model.encode_image(image.float())


def main(checkouts: Path, workdir: Path) -> None:
    inputs = torch.load(workdir / "inputs.pt", weights_only=False)
    state_dict, pixels, texts = inputs["state_dict"], inputs["pixels"], inputs["texts"]
    text_embeddings = inputs["text_embeddings"]
    out: dict = {"grid": (14, 14)}
    torch.set_num_threads(inputs.get("threads", 2))

    # --- OpenAI-format CLIP models: CLIP Surgery's copy of OpenAI's code (plain and surgery) and Chefer's
    surgery_clip = load_package("surgery_clip", checkouts / "CLIP_Surgery" / "clip")
    chefer_clip = load_package("chefer_clip", checkouts / "Transformer-MM-Explainability" / "CLIP" / "clip")
    # OpenAI's `clip` package, which the Grad-ECLIP repository and M2IB use, is not on PyPI: Chefer's copy of it
    # stands in where gradients flow (its blocks record their attention and need gradients), open_clip 2.23's
    # ViT-B-16-quickgelu (the same architecture and key names, sequence-first blocks) where they do not (CLIP
    # Surgery's copy returns every token's feature from encode_image, so it cannot stand in).
    import open_clip

    surgery_model = importlib.import_module("surgery_clip.build_model").build_model(
        "CS-ViT-B/16", dict(state_dict)).float().eval()
    chefer_model = importlib.import_module("chefer_clip.model").build_model(dict(state_dict)).float().eval()
    openai_model = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None)
    openai_model.load_state_dict(state_dict)
    openai_model = openai_model.eval()
    openai_model.dtype = torch.float32  # OpenAI's CLIP has this attribute; M2IB's wrapper reads it
    tokens = surgery_clip.tokenize(texts)

    progress("Grad-ECLIP repository")
    # --- Grad-ECLIP repository (generate_emap.py): raw attention, Grad-CAM, MaskCLIP features, rollout, RISE
    emap = checkouts / "Grad-Eclip" / "generate_emap.py"
    namespace = {"torch": torch, "F": F, "np": np, "clipmodel": chefer_model, "device": DEVICE,
                 "tqdm": lambda it, **kw: it}
    from skimage.transform import resize as np_resize
    namespace["np_resize"] = np_resize
    functions_of(emap, ["attention_layer", "clip_encode_dense", "grad_cam", "mask_clip", "generate_masks", "rise",
                        "mm_interpret", "compute_rollout_attention"], namespace,
                 {".cuda()": ".to(device)", "x = x.half()": "x = x.float()"})
    raw_single, gradcam_single, maskclip_cos = [], [], []
    for b in range(len(pixels)):
        outputs, v_final, last_input, v, q_out, k_out, attn, att_output, map_size = \
            namespace["clip_encode_dense"](pixels[b:b + 1])
        raw_single.append(attn[0, :1, 1:].detach().reshape(*map_size))
        c = (F.normalize(outputs[:, 0], dim=-1) @ text_embeddings[b:b + 1].T)[0, 0]
        gradcam_single.append(namespace["grad_cam"](c, last_input, map_size))
        maskclip_cos.append((F.normalize(v_final, dim=-1) @ text_embeddings[b])[0].detach().reshape(*map_size))
    out["raw-attention-single"] = torch.stack(raw_single)
    out["grad-cam-single"] = torch.stack(gradcam_single)
    out["maskclip(normalize=False)"] = torch.stack(maskclip_cos)

    progress("rollout")
    chefer_tokens = chefer_clip.tokenize(texts)
    rollouts, last_means = [], []
    for b in range(len(pixels)):
        attentions = namespace["mm_interpret"](pixels[b:b + 1], chefer_tokens[b:b + 1], chefer_model, DEVICE,
                                               start_layer=0, rollout=True)
        rollouts.append(namespace["compute_rollout_attention"](attentions)[0])
        last_means.append(attentions[-1][0, 0, 1:].reshape(14, 14))
    out["rollout"] = torch.stack(rollouts).detach()
    out["raw-attention"] = torch.stack(last_means).detach()

    progress("RISE")
    n_masks, seed = inputs["rise_masks"], inputs["rise_seed"]
    np.random.seed(seed)
    masks = namespace["generate_masks"]((224, 224), n_masks, 8, 0.5)
    out["rise_masks"] = masks[:, 0].float()
    rise_maps = []
    for b in range(len(pixels)):
        np.random.seed(seed)  # rise() draws the same masks again
        rise_maps.append(namespace["rise"](OpenAIEncodeImage(openai_model), pixels[b:b + 1], text_embeddings[b:b + 1], DEVICE, N=n_masks,
                                           s=8, p1=0.5))
    out["rise(normalize=False)"] = torch.stack(rise_maps).float()
    grids = np.random.default_rng(0).random((3, 8, 8)) < 0.5
    out["skimage_resize"] = {"grids": torch.from_numpy(grids.astype(np.float64)),
                             "resized": torch.from_numpy(np.stack([np_resize(g.astype(np.float32), (108, 108), order=1,
                                                                            mode="reflect", anti_aliasing=False)
                                                                  for g in grids]))}

    progress("GAME")
    # --- GAME: Chefer et al.'s notebook
    game = {"start_layer": -1, "start_layer_text": -1, "torch": torch, "np": np}
    notebook_function(checkouts / "Transformer-MM-Explainability" / "CLIP_explainability.ipynb", "interpret", game,
                      {".cuda()": ".to(device)"})
    for start in (-1, 0):
        maps = []
        for b in range(len(pixels)):
            _, relevance = game["interpret"](pixels[b:b + 1], chefer_tokens[b:b + 1], chefer_model, DEVICE,
                                             start_layer=start)
            maps.append(relevance[0].reshape(14, 14).detach())
        out[f"game(start_layer={start})"] = torch.stack(maps)

    progress("CLIP Surgery")
    # --- CLIP Surgery (its demo's single-text path)
    with torch.no_grad():
        features = surgery_model.encode_image(pixels)
        features = features / features.norm(dim=-1, keepdim=True)
        redundant = surgery_clip.encode_text_with_prompt_ensemble(surgery_model, [""], DEVICE)
        maps = []
        for b, text in enumerate(texts):
            text_features = surgery_clip.encode_text_with_prompt_ensemble(surgery_model, [text], DEVICE)
            similarity = surgery_clip.clip_feature_surgery(features[b:b + 1], text_features, redundant)
            maps.append(surgery_clip.get_similarity_map(similarity[:, 1:, :], (14, 14))[0, :, :, 0])
        out["clip-surgery"] = torch.stack(maps)

    progress("M2IB")
    # --- M2IB: vision_heatmap_iba with the model's own text embedding (see test_baselines_authors.py)
    sys.path.insert(0, str(checkouts / "M2IB"))
    sys.modules.setdefault("clip", surgery_clip)  # methods.py imports OpenAI's `clip` package (unused there)
    from scripts.clip_wrapper import ClipWrapper
    from scripts.methods import vision_heatmap_iba

    class OwnTextClip(ClipWrapper):
        text = None

        def get_text_features(self, x, output_hidden_states=False, emb_input=False):
            return self.text.expand(len(x), -1)

    wrapper = OwnTextClip(openai_model)
    maps, wrapper_text_cosines = [], []
    for b in range(len(pixels)):
        ids = tokens[b:b + 1, :int(tokens[b].argmax()) + 1].long()
        with torch.no_grad():
            wrapper_text_cosines.append(float(F.cosine_similarity(
                ClipWrapper.get_text_features(wrapper, ids), text_embeddings[b:b + 1])))
        wrapper.text = text_embeddings[b:b + 1]
        torch.manual_seed(inputs["m2ib_seed"])
        maps.append(torch.from_numpy(vision_heatmap_iba(ids, pixels[b:b + 1], wrapper, 9, 0.1, 1, progbar=False)))
    out["m2ib(224)"] = torch.stack(maps).float()
    out["m2ib_wrapper_text_cosine"] = wrapper_text_cosines

    progress("LeGrad")
    # --- LeGrad 1.1 on open_clip 2.23's ViT-B-16-quickgelu with the same weights
    sys.path.insert(0, str(checkouts / "LeGrad"))
    from legrad import LeWrapper

    model = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None)
    model.load_state_dict(state_dict)
    model = LeWrapper(model.eval())
    maps = []
    for b in range(len(pixels)):
        maps.append(model.compute_legrad(text_embedding=text_embeddings[b:b + 1], image=pixels[b:b + 1])[0, 0].detach())
    out["legrad(224)"] = torch.stack(maps)
    from importlib.metadata import version
    out["versions"] = {"open_clip_torch": version("open_clip_torch"), "torch": torch.__version__}
    torch.save(out, workdir / "reference.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
