"""Container images: a full ECR URI as given, or `framework:version` resolved through the SageMaker SDK."""

from __future__ import annotations

import re

from sme.errors import ConfigError, UserError

ECR_URI = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9._/-]+(:[\w.-]+|@sha256:[0-9a-f]{64})$")
SHORT = re.compile(r"^([a-z][a-z0-9-]*):([\w.-]+)$")


def resolve_image(image: str, region: str, instance_type: str | None, source: str) -> str:
    if ECR_URI.fullmatch(image):
        return image
    if "/" in image or "." in image.split(":")[0]:
        raise ConfigError(source, "model.image", f"{image!r} is not an ECR image URI",
                          hint="use <account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>, or framework:version "
                          "such as xgboost:1.7-1")
    match = SHORT.fullmatch(image)
    if not match:
        raise ConfigError(source, "model.image", f"{image!r} is neither an ECR URI nor framework:version",
                          hint="e.g. xgboost:1.7-1, sklearn:1.2-1, pytorch:2.1")
    framework, version = match.groups()
    try:
        from sagemaker.core import image_uris  # ~1.3 s: only here, only for short names
    except ImportError:
        raise UserError("resolving framework:version images needs the SageMaker SDK (sagemaker-core)",
                        hint="pip install sagemaker-core, or give model.image as a full ECR URI") from None
    kwargs = {"framework": framework, "region": region, "version": version, "image_scope": "inference"}
    if instance_type:
        kwargs["instance_type"] = instance_type
    try:
        return image_uris.retrieve(**kwargs)
    except FileNotFoundError:
        raise ConfigError(source, "model.image", f"SageMaker publishes no framework named {framework!r}",
                          hint="use a framework such as xgboost, sklearn, pytorch, tensorflow, huggingface, "
                          "or a full ECR URI") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(source, "model.image", f"cannot resolve {image!r} in {region}: {exc}",
                          hint="check the framework name and version that SageMaker publishes for this region") from None
