"""The torch module of the squeeze_excite block: built as Module(params, in_shapes, out_shapes)."""
import torch
from torch import nn


class SqueezeExcite(nn.Module):
    # Hu et al. CVPR 2018, Eqs. 2-4: z = mean over H, W; s = sigmoid(W2 relu(W1 z)); out = s * x per channel.
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        channels = in_shapes["x"][0]
        self.squeeze = nn.Linear(channels, channels // p.reduction)
        self.excite = nn.Linear(channels // p.reduction, channels)

    def forward(self, x):
        gate = torch.sigmoid(self.excite(torch.relu(self.squeeze(x.mean(dim=(2, 3))))))
        return x * gate[:, :, None, None]
