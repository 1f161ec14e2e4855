#version 430 core
// Gaussian falloff of one splat at this pixel centre, premultiplied alpha output.
// Blend with glBlendFunc(GL_ONE, GL_ONE_MINUS_SRC_ALPHA), splats back to front: the result
// equals front-to-back compositing sum_i c_i a_i T_i + T bg (engine/lift/raster.py).

uniform vec2 uOrigin;  // viewport origin in window pixels (GL: from the bottom-left)
uniform vec2 uSize;    // viewport width, height

flat in vec2 vMean;
flat in vec3 vConic;
flat in vec4 vColour;

out vec4 fragColour;

const float ALPHA_MIN = 1.0 / 255.0;
const float ALPHA_MAX = 0.999;

void main() {
    // Pixel centre in viewport pixels, row 0 at the top (gl_FragCoord has centres at +0.5).
    vec2 px = vec2(gl_FragCoord.x - uOrigin.x, uSize.y - (gl_FragCoord.y - uOrigin.y));
    vec2 dd = vMean - px;
    float sigma = 0.5 * (vConic.x * dd.x * dd.x + vConic.z * dd.y * dd.y)
                + vConic.y * dd.x * dd.y;
    float raw = vColour.a * exp(-sigma);
    if (sigma < 0.0 || raw < ALPHA_MIN) discard;
    float alpha = min(raw, ALPHA_MAX);
    fragColour = vec4(vColour.rgb * alpha, alpha);
}
