#version 430 core
// Headset compose pass: copies one eye's splat render (RGBA16F, premultiplied over the
// background, sRGB-encoded values as the desktop viewer shows them) into the runtime's
// swapchain image, fading towards uFadeColour when the head leaves the comfort radius
// (uFade = 1 fully visible, 0 fully faded), and converting to linear light when the
// swapchain format is linear (UNORM / float: the compositor treats values as linear).
// With an sRGB swapchain and GL_FRAMEBUFFER_SRGB off the encoded values are stored as is,
// which is what an sRGB format means to the compositor.

uniform sampler2D uSrc;
uniform float uFade;
uniform vec3 uFadeColour;
uniform int uLinearOut;  // 1: decode sRGB to linear before writing

out vec4 fragColour;

vec3 srgb_to_linear(vec3 c) {
    vec3 lo = c / 12.92;
    vec3 hi = pow((c + 0.055) / 1.055, vec3(2.4));
    return mix(lo, hi, step(vec3(0.04045), c));
}

void main() {
    vec3 c = texelFetch(uSrc, ivec2(gl_FragCoord.xy), 0).rgb;
    c = mix(uFadeColour, clamp(c, 0.0, 1.0), uFade);
    if (uLinearOut == 1) c = srgb_to_linear(c);
    fragColour = vec4(c, 1.0);
}
